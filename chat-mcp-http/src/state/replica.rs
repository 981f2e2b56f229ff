//! A node of a chat served by several: a replica of the core fed by one shared log, a
//! Redis Stream (`--store redis://…`; keys in `store/redis.rs`).
//!
//! Every node runs the same two threads:
//!
//! - the **proposer** takes every input waiting on this node (as the journal does, up
//!   to `--journal-batch`) and appends them to the log as one entry. It applies nothing.
//! - the **reader** reads the log in order and applies every entry, whoever proposed
//!   it, at the entry's time (its id's milliseconds: one clock for every replica). When
//!   an entry is this node's own, the requests waiting for it are answered with what
//!   their inputs gave. Events are pushed to the streams this node holds; the other
//!   nodes apply the same events silently (their replicas store them in the inboxes and
//!   replay buffers all the same, so any node can resume any stream).
//!
//! The core is therefore only ever changed by the reader, in log order, on every node:
//! the replicas agree because the core is deterministic. A session opened through
//! another node gets a slot here when its `Open` is applied, and loses it on `Close`.
//!
//! Nodes are known to the core too (`chat-core/src/nodes.rs`): a node logs `Join` when
//! it starts, a heartbeat every `--node-heartbeat`, `Leave` when it stops, and each
//! stream or long request it holds names it. When a node's heartbeats stop for
//! `--node-timeout`, every replica releases what it held at the same input.
//!
//! Snapshots: each node counts the entries it applied; when one is due, a node takes a
//! short lock in Redis, writes the snapshot of its replica at that entry and trims the
//! log behind the older of the two snapshots kept. A node starting (or restarting)
//! loads the newest snapshot and replays the log after it.
//!
//! Trouble with Redis: a request whose input cannot be appended is answered with an
//! error at once (nothing was applied); one appended but not seen applied within
//! `--redis-timeout` is answered with an error that says it may still take effect. Both
//! threads reconnect by themselves and the reader catches up from where it was.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chat_core::{Applied, Chat, Input, Time};
use tokio::sync::{mpsc, oneshot};

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::state::clock;
use crate::state::durable::Started;
use crate::state::hub::Hub;
use crate::state::journal::{Cadence, Unsaved};
use crate::state::log::Log;
use crate::store::StoreError;
use crate::store::redis::{Entry, Link, RedisLog, Snapshot};

/// How long one blocking read of the log waits for a new entry (then the reader looks
/// whether the node is stopping, and reads again).
const READ_BLOCK: Duration = Duration::from_millis(500);
/// Most entries taken by one read.
const READ_COUNT: usize = 1024;
/// Waits between attempts to reach Redis again: the first, and the longest.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

type Done = oneshot::Sender<Result<Applied, Unsaved>>;

struct Job {
    input: Input,
    done: Option<Done>,
}

enum Msg {
    Job(Job),
    /// Append what is queued and `Leave`, then stop.
    Stop(oneshot::Sender<()>),
}

/// What the two threads share.
struct Shared {
    node: u64,
    hub: Arc<Hub>,
    /// Requests waiting for their entry to be applied, by batch number.
    waiting: Mutex<HashMap<u64, Vec<Option<Done>>>>,
    /// Set when the reader stops for good (the node is stopping, or it cannot apply the
    /// log); every request is refused from then on.
    broken: OnceLock<String>,
    stopping: AtomicBool,
    /// The position the reader applied through.
    applied: AtomicU64,
}

impl Shared {
    fn refuse(&self, dones: Vec<Option<Done>>, why: &str) {
        for done in dones.into_iter().flatten() {
            let _ = done.send(Err(Unsaved(why.to_owned())));
        }
    }

    fn take_waiting(&self, batch: u64) -> Option<Vec<Option<Done>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&batch)
    }

    /// The reader cannot go on: say why, and refuse everything waiting and to come.
    fn break_down(&self, why: String) {
        tracing::error!(%why, "this node stops applying the shared log and refuses requests; restart it");
        let waiting: Vec<_> = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .flat_map(|(_, d)| d)
            .collect();
        self.refuse(waiting, &why);
        let _ = self.broken.set(why);
    }
}

/// This node's handle on the shared log.
pub struct Replica {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopped: AtomicBool,
    timeout: Duration,
}

impl Replica {
    /// This node's id (random, new at every start).
    pub fn node(&self) -> u64 {
        self.shared.node
    }

    /// Appends `input` to the shared log; resolves with what it answered once this
    /// node applied it.
    pub async fn submit(&self, input: Input) -> Result<Applied, Unsaved> {
        if let Some(why) = self.shared.broken.get() {
            return Err(Unsaved(why.clone()));
        }
        let (done, answer) = oneshot::channel();
        if self.stopped.load(Ordering::Acquire)
            || self.tx.send(Msg::Job(Job { input, done: Some(done) })).is_err()
        {
            return Err(Unsaved("the server is stopping".into()));
        }
        match tokio::time::timeout(self.timeout * 2, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Unsaved("the server is stopping".into())),
            Err(_) => Err(Unsaved(format!(
                "the shared log (Redis) did not confirm this request within {:?}; it may still take effect",
                self.timeout * 2
            ))),
        }
    }

    /// Appends `input` without waiting for it (it is still ordered after everything
    /// submitted before it on this node).
    pub fn submit_detached(&self, input: Input) {
        if !self.stopped.load(Ordering::Acquire) && self.shared.broken.get().is_none() {
            let _ = self.tx.send(Msg::Job(Job { input, done: None }));
        }
    }

    /// Appends what is queued and this node's `Leave` (its streams end now; their
    /// clients go on through the other nodes), then stops both threads.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let (done, finished) = oneshot::channel();
        if self.tx.send(Msg::Stop(done)).is_ok() {
            let _ = finished.await;
        }
        self.shared.stopping.store(true, Ordering::Release);
        let threads: Vec<_> = self.threads.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect();
        for thread in threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Opens the chat kept in the Redis at `config.store`: the newest snapshot plus the log
/// after it (a new chat if there is none), then joins it as a new node.
pub fn open(
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(Arc<Hub>, Started), String> {
    let started = Instant::now();
    let crate::store::StoreUrl::Redis(url) = &config.store else {
        return Err("not a Redis store".into());
    };
    let named = |error: StoreError| format!("store {url}: {error}");
    let log = RedisLog::new(url, &config.redis_prefix, config.redis_timeout).map_err(named)?;
    let mut link = log.connect(Duration::ZERO).map_err(named)?;
    let restored = restore(&mut link, || Hub::fresh_core(&config)).map_err(named)?;
    let restore_took = started.elapsed();
    let mut node = [0u8; 8];
    getrandom::fill(&mut node).map_err(|e| format!("cannot draw a node id: {e}"))?;
    let node = u64::from_le_bytes(node).max(1);
    let hub = Hub::restored(config.clone(), metrics, shutdown, restored.chat);
    let sessions = hub.sessions().len();
    let cadence = Cadence {
        batch: config.journal_batch.max(1),
        every: config.snapshot_every.max(1),
        interval: config.snapshot_interval,
    };
    let replica =
        start(hub.clone(), log, node, restored.position, restored.id, cadence, config.redis_timeout);
    hub.attach_log(Log::Shared(replica));
    hub.apply_detached(Input::Configure {
        limits: Box::new(config.limits.clone()),
        registered: config.registered.clone(),
    });
    hub.apply_detached(Input::Join { node });
    tokio::spawn(heartbeat(hub.clone(), node, config.node_heartbeat));
    tracing::info!(node = format!("{node:016x}"), "joined the chat as a new node");
    let report = Started {
        position: restored.position,
        snapshot: restored.snapshot,
        replayed: restored.position - restored.snapshot,
        sessions,
        fresh: restored.fresh,
        took: started.elapsed(),
        restore: restore_took,
    };
    Ok((hub, report))
}

/// What start-up read from Redis.
struct Restored {
    chat: Chat,
    position: u64,
    id: String,
    snapshot: u64,
    fresh: bool,
}

/// The newest snapshot that reads back plus every entry after it; a new chat (and its
/// first snapshot, written only if no other node wrote one first) for empty keys.
fn restore(link: &mut Link, fresh: impl Fn() -> Result<Chat, String>) -> Result<Restored, StoreError> {
    let mut made_fresh = false;
    let (mut chat, snapshot) = loop {
        let kept = link.snapshots()?;
        if kept.is_empty() {
            if link.has_log()? {
                return Err(StoreError(
                    "the shared log has entries but no snapshot to replay them from; restore Redis from a backup"
                        .into(),
                ));
            }
            let chat = fresh().map_err(StoreError)?;
            let state = chat.snapshot().map_err(StoreError)?;
            if link.genesis(clock::now().as_millis(), &state)? {
                made_fresh = true;
                break (chat, Snapshot { position: 0, id: "0-0".into(), state: Vec::new() });
            }
            continue; // another node made the chat first: use theirs
        }
        let mut problems = Vec::new();
        let mut found = None;
        for position in kept {
            match link
                .read_snapshot(position)
                .and_then(|s| Ok((Chat::restore(&s.state).map_err(StoreError)?, s)))
            {
                Ok(ok) => {
                    found = Some(ok);
                    break;
                }
                Err(error) => problems.push(format!("snapshot {position}: {error}")),
            }
        }
        match found {
            Some(found) => break found,
            None => return Err(StoreError(format!("no snapshot reads back ({})", problems.join("; ")))),
        }
    };
    let (mut position, mut id) = (snapshot.position, snapshot.id);
    loop {
        let entries = link.range(&id, READ_COUNT)?;
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            let inputs = decode(&entry, position)?;
            for input in inputs {
                chat.apply(Time::from_millis(entry.at_ms), input);
            }
            while chat.poll_outbound().is_some() {}
            while chat.poll_expired().is_some() {}
            (position, id) = (entry.position, entry.id);
        }
    }
    Ok(Restored { chat, position, id, snapshot: snapshot.position, fresh: made_fresh })
}

/// The inputs of `entry`, which must come right after `position`.
fn decode(entry: &Entry, position: u64) -> Result<Vec<Input>, StoreError> {
    if entry.position != position + 1 {
        return Err(StoreError(format!(
            "the shared log jumps from entry {position} to {} (entries were trimmed before this node read them)",
            entry.position
        )));
    }
    serde_json::from_slice(&entry.inputs).map_err(|e| {
        StoreError(format!("entry {} of the shared log does not read back ({e})", entry.position))
    })
}

fn start(
    hub: Arc<Hub>,
    log: RedisLog,
    node: u64,
    position: u64,
    id: String,
    cadence: Cadence,
    timeout: Duration,
) -> Replica {
    let shared = Arc::new(Shared {
        node,
        hub,
        waiting: Mutex::default(),
        broken: OnceLock::new(),
        stopping: AtomicBool::new(false),
        applied: AtomicU64::new(position),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let proposer = Proposer { shared: shared.clone(), log: log.clone(), link: None, rx, batch: 0, cadence };
    let reader = Reader {
        shared: shared.clone(),
        log,
        position,
        id,
        cadence,
        since_snapshot: 0,
        snapshot_at: Instant::now(),
        snapshotting: Arc::new(AtomicBool::new(false)),
    };
    let mut threads = Vec::new();
    for (name, run) in [
        ("log-proposer", Box::new(move || proposer.run()) as Box<dyn FnOnce() + Send>),
        ("log-reader", Box::new(move || reader.run())),
    ] {
        match std::thread::Builder::new().name(name.into()).spawn(run) {
            Ok(thread) => threads.push(thread),
            Err(error) => shared.break_down(format!("cannot start the {name} thread: {error}")),
        }
    }
    Replica { shared, tx, threads: Mutex::new(threads), stopped: AtomicBool::new(false), timeout }
}

/// Appends this node's inputs.
struct Proposer {
    shared: Arc<Shared>,
    log: RedisLog,
    link: Option<Link>,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// Batches appended so far.
    batch: u64,
    cadence: Cadence,
}

impl Proposer {
    fn run(mut self) {
        let mut failing = false;
        while let Some(first) = self.rx.blocking_recv() {
            let mut jobs = Vec::new();
            let mut stop = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Job(job) => jobs.push(job),
                    Msg::Stop(done) => {
                        stop = Some(done);
                        break;
                    }
                }
                if jobs.len() < self.cadence.batch {
                    next = self.rx.try_recv().ok();
                }
            }
            if let Some(done) = stop {
                while let Ok(Msg::Job(job)) = self.rx.try_recv() {
                    jobs.push(job);
                }
                jobs.push(Job { input: Input::Leave { node: self.shared.node }, done: None });
                if let Err(error) = self.append(jobs) {
                    tracing::warn!(%error, "this node's leave was not logged; the others give it up after --node-timeout");
                }
                let _ = done.send(());
                return;
            }
            match self.append(jobs) {
                Ok(()) if failing => {
                    tracing::warn!("the shared log accepts entries again");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) => {
                    if !failing {
                        tracing::error!(%error, "cannot append to the shared log; requests fail until Redis is back");
                        failing = true;
                    }
                    self.shared.hub.metrics.store_failed();
                }
            }
        }
    }

    /// Appends `jobs` as one entry; on failure answers each with the error.
    fn append(&mut self, jobs: Vec<Job>) -> Result<(), StoreError> {
        let (inputs, dones): (Vec<Input>, Vec<Option<Done>>) =
            jobs.into_iter().map(|j| (j.input, j.done)).unzip();
        let bytes = match serde_json::to_vec(&inputs) {
            Ok(bytes) => bytes,
            Err(error) => {
                let error = StoreError(format!("cannot encode an input: {error}"));
                self.shared.refuse(dones, &error.0);
                return Err(error);
            }
        };
        self.batch += 1;
        let batch = self.batch;
        // Parked before the append: the reader may see the entry before it returns.
        self.shared.waiting.lock().unwrap_or_else(PoisonError::into_inner).insert(batch, dones);
        let started = Instant::now();
        let mut appended = self.try_append(batch, &bytes);
        if appended.is_err() {
            // The connection may have broken since its last use (Redis restarted): once
            // more on a new one. The batch number makes a second append of an entry that
            // did get in a no-op.
            self.link = None;
            appended = self.try_append(batch, &bytes);
        }
        match appended {
            Ok(_) => {
                self.shared.hub.metrics.journal_commit(inputs.len(), started.elapsed());
                Ok(())
            }
            Err(error) => {
                self.link = None;
                if let Some(dones) = self.shared.take_waiting(batch) {
                    self.shared.refuse(dones, &format!("{error}; nothing was changed, retry in a moment"));
                }
                Err(error)
            }
        }
    }
}

impl Proposer {
    fn try_append(&mut self, batch: u64, bytes: &[u8]) -> Result<(u64, String), StoreError> {
        let link = match self.link.as_mut() {
            Some(link) => link,
            None => self.link.insert(self.log.connect(Duration::ZERO)?),
        };
        link.append(self.shared.node, batch, bytes)
    }
}

/// Applies the log.
struct Reader {
    shared: Arc<Shared>,
    log: RedisLog,
    /// The position and stream id applied through.
    position: u64,
    id: String,
    cadence: Cadence,
    since_snapshot: u64,
    snapshot_at: Instant,
    snapshotting: Arc<AtomicBool>,
}

impl Reader {
    fn run(mut self) {
        let mut link: Option<Link> = None;
        let mut wait = RECONNECT_FIRST;
        let mut failing = false;
        while !self.shared.stopping.load(Ordering::Acquire) {
            let read = match link.as_mut() {
                Some(link) => link.read(&self.id, READ_BLOCK, READ_COUNT),
                None => self
                    .log
                    .connect(READ_BLOCK)
                    .and_then(|l| link.insert(l).read(&self.id, READ_BLOCK, READ_COUNT)),
            };
            let entries = match read {
                Ok(entries) => {
                    if failing {
                        tracing::warn!(position = self.position, "reading the shared log again; catching up");
                        failing = false;
                    }
                    wait = RECONNECT_FIRST;
                    entries
                }
                Err(error) => {
                    if !failing {
                        tracing::error!(%error, "cannot read the shared log; retrying");
                        failing = true;
                    }
                    link = None;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            for entry in entries {
                if entry.position <= self.position {
                    // A later entry with a position this node applied already: Redis lost
                    // entries (restarted without persisting them) and numbered new ones
                    // again. This replica holds inputs the log no longer has.
                    self.shared.break_down(format!(
                        "the shared log lost entries this node applied (entry {} came after {}); Redis restarted without them",
                        entry.position, self.position
                    ));
                    return;
                }
                if let Err(error) = self.apply(entry) {
                    self.shared.break_down(error.0);
                    return;
                }
            }
        }
    }

    fn apply(&mut self, entry: Entry) -> Result<(), StoreError> {
        let inputs = decode(&entry, self.position)?;
        let mine = entry.node == self.shared.node;
        let dones = if mine { self.shared.take_waiting(entry.batch) } else { None };
        self.shared.hub.apply_logged(Time::from_millis(entry.at_ms), inputs, !mine, |applied| {
            for (done, applied) in dones.into_iter().flatten().zip(applied) {
                if let Some(done) = done {
                    let _ = done.send(Ok(applied));
                }
            }
        });
        (self.position, self.id) = (entry.position, entry.id);
        self.shared.applied.store(self.position, Ordering::Release);
        self.since_snapshot += 1;
        let due = self.since_snapshot >= self.cadence.every
            || (self.since_snapshot > 0 && self.snapshot_at.elapsed() >= self.cadence.interval);
        if due && !self.snapshotting.swap(true, Ordering::AcqRel) {
            self.since_snapshot = 0;
            self.snapshot_at = Instant::now();
            self.snapshot_in_background();
        }
        Ok(())
    }

    /// Writes a snapshot of this replica as of now (the entry just applied), unless
    /// another node wrote a recent one or is writing one.
    fn snapshot_in_background(&self) {
        let chat = self.shared.hub.clone_core();
        let (position, id) = (self.position, self.id.clone());
        let (log, node, every) = (self.log.clone(), self.shared.node, self.cadence.every);
        let busy = self.snapshotting.clone();
        let metrics = self.shared.hub.metrics.clone();
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            let started = Instant::now();
            match write_snapshot(&log, node, every, chat, position, id) {
                Ok(Some(bytes)) => {
                    metrics.snapshot_saved(bytes, started.elapsed());
                    tracing::info!(position, bytes, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot saved");
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error, position, "cannot save a snapshot; the log is kept until one succeeds"),
            }
            busy.store(false, Ordering::Release);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a snapshot thread");
            self.snapshotting.store(false, Ordering::Release);
        }
    }
}

/// The bytes written, or `None` if a recent snapshot made this one unneeded.
fn write_snapshot(
    log: &RedisLog,
    node: u64,
    every: u64,
    chat: Chat,
    position: u64,
    id: String,
) -> Result<Option<usize>, StoreError> {
    let mut link = log.connect(Duration::ZERO)?;
    let newest = link.snapshots()?.first().copied().unwrap_or(0);
    if newest + every / 2 > position || !link.lock_snapshots(node)? {
        return Ok(None);
    }
    let result = chat.snapshot().map_err(StoreError).and_then(|state| {
        let bytes = state.len();
        link.save_snapshot(&Snapshot { position, id, state }, clock::now().as_millis()).map(|()| Some(bytes))
    });
    let _ = link.unlock_snapshots(node);
    result
}

/// Logs this node's heartbeat every `every`. If the chat gave this node up anyway (it
/// could not reach Redis for longer than `--node-timeout`), it joins again and drops its
/// streams, so their clients reopen them and hold them anew.
async fn heartbeat(hub: Arc<Hub>, node: u64, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = hub.shutdown_token().cancelled() => return,
        }
        if hub.read(|chat| chat.is_node_live(node)) {
            hub.apply_detached(Input::Heartbeat { node });
            continue;
        }
        tracing::warn!("the other nodes gave this node up (it was cut off from Redis); joining again");
        if hub.apply(Input::Join { node }).await.is_ok() {
            for slot in hub.sessions() {
                slot.drop_stream_connection();
            }
        }
    }
}
