//! The journal: with a durable store, every input is logged before it is applied.
//!
//! One thread owns the store. Requests hand it their input ([`Journal::submit`]) and wait;
//! the thread takes every input that is waiting (up to `--journal-batch`), gives them one
//! time, writes them in one commit (group commit: one flush covers them all), and only
//! then applies them to the core, in log order, and answers. So:
//!
//! - the log order is the apply order, and a reply or an event is never seen before its
//!   input is durable;
//! - a failed commit applies nothing: its requests get an error, and the next commit may
//!   succeed (the server keeps serving once the store recovers);
//! - snapshots are taken every `--snapshot-every` inputs or `--snapshot-interval`: the
//!   core is cloned under its lock (fast), serialized on a thread of its own, and written
//!   by this thread between commits.
//!
//! [`recover`] is the other half: the newest readable snapshot plus the log after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chat_core::{Applied, Chat, Input, Time};
use tokio::sync::{mpsc, oneshot};

use crate::state::clock;
use crate::state::hub::Hub;
use crate::store::{Record, Store, StoreError};

/// A request whose input could not be logged: nothing of it was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsaved(pub String);

impl std::fmt::Display for Unsaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server could not save this request ({}); nothing was changed, retry in a moment",
            self.0
        )
    }
}

struct Job {
    input: Input,
    done: Option<oneshot::Sender<Result<Applied, Unsaved>>>,
}

enum Msg {
    Job(Job),
    /// A snapshot serialized off this thread, to be written.
    Snapshot {
        position: u64,
        state: Result<Vec<u8>, String>,
    },
    /// Take a last snapshot, then stop.
    Stop(oneshot::Sender<()>),
}

/// Settings of the journal thread.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    /// Most inputs per commit.
    pub batch: usize,
    /// Snapshot after this many inputs.
    pub every: u64,
    /// Snapshot after this long (if anything was logged).
    pub interval: Duration,
}

/// The handle requests use to log their inputs.
pub struct Journal {
    tx: mpsc::UnboundedSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
}

impl Journal {
    /// Starts the journal thread on `store`, whose log ends at `position`, logged at
    /// `last_at` (ms; times in the log never go back).
    pub fn start(
        hub: Arc<Hub>,
        store: Box<dyn Store>,
        position: u64,
        last_at: u64,
        cadence: Cadence,
    ) -> Journal {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer { hub, store, rx, tx: tx.clone(), position, cadence, last_at };
        let thread = std::thread::Builder::new().name("journal".into()).spawn(move || writer.run());
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(%error, "cannot start the journal thread");
                None
            }
        };
        Journal { tx, thread: Mutex::new(thread), stopped: AtomicBool::new(false) }
    }

    /// Logs `input`, then applies it; resolves with what it answered.
    pub async fn submit(&self, input: Input) -> Result<Applied, Unsaved> {
        let (done, answer) = oneshot::channel();
        if self.stopped.load(Ordering::Acquire)
            || self.tx.send(Msg::Job(Job { input, done: Some(done) })).is_err()
        {
            return Err(Unsaved("the server is stopping".into()));
        }
        answer.await.unwrap_or_else(|_| Err(Unsaved("the server is stopping".into())))
    }

    /// Logs and applies `input` without waiting for it.
    pub fn submit_detached(&self, input: Input) {
        if !self.stopped.load(Ordering::Acquire) {
            let _ = self.tx.send(Msg::Job(Job { input, done: None }));
        }
    }

    /// Refuses new inputs, writes what is queued and a last snapshot, and stops.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let (done, finished) = oneshot::channel();
        if self.tx.send(Msg::Stop(done)).is_ok() {
            let _ = finished.await;
        }
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

struct Writer {
    hub: Arc<Hub>,
    store: Box<dyn Store>,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// For snapshot threads to hand their result back.
    tx: mpsc::UnboundedSender<Msg>,
    /// The position of the last logged input.
    position: u64,
    cadence: Cadence,
    last_at: u64,
}

impl Writer {
    fn run(mut self) {
        let mut since_snapshot: u64 = 0;
        let mut snapshot_at = Instant::now();
        let mut snapshotting = false;
        let mut failing = false;
        let mut jobs: Vec<Job> = Vec::with_capacity(self.cadence.batch);
        while let Some(first) = self.rx.blocking_recv() {
            let mut stop = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Job(job) => jobs.push(job),
                    Msg::Snapshot { position, state } => {
                        snapshotting = false;
                        self.save_snapshot(position, state);
                    }
                    Msg::Stop(done) => {
                        stop = Some(done);
                        break;
                    }
                }
                if jobs.len() < self.cadence.batch {
                    next = self.rx.try_recv().ok();
                }
            }
            if !jobs.is_empty() {
                let n = jobs.len() as u64;
                match self.commit(&mut jobs) {
                    Ok(()) => {
                        since_snapshot += n;
                        if failing {
                            tracing::warn!("the store accepts writes again");
                            failing = false;
                        }
                    }
                    Err(error) => {
                        if !failing {
                            tracing::error!(%error, "cannot write to the store; requests fail until it recovers");
                            failing = true;
                        }
                        self.hub.metrics.store_failed();
                    }
                }
            }
            if let Some(done) = stop {
                // Inputs that raced the stop still get an answer.
                while let Ok(msg) = self.rx.try_recv() {
                    if let Msg::Job(job) = msg {
                        jobs.push(job);
                    }
                }
                if !jobs.is_empty() {
                    let _ = self.commit(&mut jobs);
                }
                let chat = self.hub.clone_core();
                self.save_snapshot(self.position, chat.snapshot());
                let _ = done.send(());
                return;
            }
            let due = since_snapshot >= self.cadence.every
                || (since_snapshot > 0 && snapshot_at.elapsed() >= self.cadence.interval);
            if due && !snapshotting {
                snapshotting = true;
                since_snapshot = 0;
                snapshot_at = Instant::now();
                self.snapshot_in_background();
            }
        }
    }

    /// Logs `jobs` in one commit, then applies and answers them; on failure answers
    /// each with the error and applies nothing.
    fn commit(&mut self, jobs: &mut Vec<Job>) -> Result<(), StoreError> {
        let at = clock::now().as_millis().max(self.last_at);
        let mut records = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            let input = serde_json::to_vec(&job.input)
                .map_err(|e| StoreError(format!("cannot encode an input: {e}")));
            let input = match input {
                Ok(input) => input,
                Err(error) => return Err(self.refuse(jobs, error)),
            };
            records.push(Record { position: self.position + 1 + i as u64, at_ms: at, input });
        }
        let started = Instant::now();
        if let Err(error) = self.store.append(&records) {
            return Err(self.refuse(jobs, error));
        }
        self.hub.metrics.journal_commit(records.len(), started.elapsed());
        self.position += records.len() as u64;
        self.last_at = at;
        let (inputs, dones): (Vec<Input>, Vec<_>) = jobs.drain(..).map(|j| (j.input, j.done)).unzip();
        self.hub.apply_logged(Time::from_millis(at), inputs, false, |applied| {
            for (done, applied) in dones.into_iter().zip(applied) {
                if let Some(done) = done {
                    let _ = done.send(Ok(applied));
                }
            }
        });
        Ok(())
    }

    fn refuse(&self, jobs: &mut Vec<Job>, error: StoreError) -> StoreError {
        for job in jobs.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(Err(Unsaved(error.0.clone())));
            }
        }
        error
    }

    fn snapshot_in_background(&self) {
        let chat = self.hub.clone_core();
        let position = self.position;
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            let state = chat.snapshot();
            let _ = tx.send(Msg::Snapshot { position, state });
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a snapshot thread");
        }
    }

    fn save_snapshot(&mut self, position: u64, state: Result<Vec<u8>, String>) {
        let started = Instant::now();
        let result = state.map_err(StoreError).and_then(|bytes| {
            self.store.save_snapshot(position, clock::now().as_millis(), &bytes).map(|()| bytes.len())
        });
        match result {
            Ok(bytes) => {
                self.hub.metrics.snapshot_saved(bytes, started.elapsed());
                tracing::info!(
                    position,
                    bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "snapshot saved"
                );
            }
            Err(error) => {
                tracing::error!(%error, position, "cannot save a snapshot; the log is kept until one succeeds")
            }
        }
    }
}

/// What start-up found in the store.
pub struct Recovered {
    /// The restored core.
    pub chat: Chat,
    /// The position of the last input in the log.
    pub position: u64,
    /// The snapshot it started from.
    pub snapshot: u64,
    /// Inputs replayed after it.
    pub replayed: u64,
    /// Whether the store was empty (a fresh chat was made).
    pub fresh: bool,
}

/// Restores the chat kept in `store`: the newest snapshot that reads back, plus every
/// input logged after it. An empty store gets `fresh()` and its first snapshot at once
/// (it holds the seed of every id the chat will make). Anything unreadable is an error
/// that names what is wrong: a chat is never silently started empty over a damaged one.
pub fn recover(store: &mut dyn Store, fresh: impl FnOnce() -> Chat) -> Result<Recovered, StoreError> {
    let snapshots = store.snapshots()?;
    if snapshots.is_empty() {
        // Stop at the first record: one is enough to know the log is not empty. An error
        // before any record is the store's own, and a chat is never started over it.
        let mut logged = false;
        let looked = store.read_log(0, &mut |_| {
            logged = true;
            Err(StoreError("stop at the first record".into()))
        });
        if let (Err(error), false) = (looked, logged) {
            return Err(error);
        }
        if logged {
            return Err(StoreError(
                "the store has logged inputs but no snapshot to replay them from; restore it from a backup"
                    .into(),
            ));
        }
        let chat = fresh();
        let state = chat.snapshot().map_err(StoreError)?;
        store.save_snapshot(0, clock::now().as_millis(), &state)?;
        return Ok(Recovered { chat, position: 0, snapshot: 0, replayed: 0, fresh: true });
    }
    let mut problems = Vec::new();
    let mut restored = None;
    for position in snapshots {
        match store.read_snapshot(position).and_then(|bytes| Chat::restore(&bytes).map_err(StoreError)) {
            Ok(chat) => {
                restored = Some((position, chat));
                break;
            }
            Err(error) => {
                tracing::warn!(position, %error, "a snapshot does not read back; trying an older one");
                problems.push(format!("snapshot at input {position}: {error}"));
            }
        }
    }
    let Some((snapshot, mut chat)) = restored else {
        return Err(StoreError(format!("no snapshot reads back ({})", problems.join("; "))));
    };
    let mut position = snapshot;
    store.read_log(snapshot, &mut |record| {
        if record.position != position + 1 {
            return Err(StoreError(format!(
                "the log jumps from input {position} to {}; restore the store from a backup",
                record.position
            )));
        }
        let input: Input = serde_json::from_slice(&record.input).map_err(|e| {
            StoreError(format!(
                "input {} of the log does not read back ({e}); restore the store from a backup",
                record.position
            ))
        })?;
        chat.apply(Time::from_millis(record.at_ms), input);
        // Nobody is connected yet: what these caused stays in the inboxes.
        while chat.poll_outbound().is_some() {}
        while chat.poll_expired().is_some() {}
        position = record.position;
        Ok(())
    })?;
    Ok(Recovered { chat, position, snapshot, replayed: position - snapshot, fresh: false })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use chat_core::{Command, SessionId};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::ServerConfig;

    /// A store in memory whose writes fail while `fail` is set (a full or broken disk).
    struct Flaky {
        fail: Arc<AtomicBool>,
        log: Arc<Mutex<Vec<Record>>>,
        snapshots: Vec<(u64, Vec<u8>)>,
    }

    impl Store for Flaky {
        fn snapshots(&mut self) -> Result<Vec<u64>, StoreError> {
            Ok(self.snapshots.iter().rev().map(|(p, _)| *p).collect())
        }
        fn read_snapshot(&mut self, position: u64) -> Result<Vec<u8>, StoreError> {
            let found = self.snapshots.iter().find(|(p, _)| *p == position);
            found.map(|(_, s)| s.clone()).ok_or_else(|| StoreError("no such snapshot".into()))
        }
        fn read_log(
            &mut self,
            after: u64,
            each: &mut dyn FnMut(Record) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            let log = self.log.lock().unwrap_or_else(PoisonError::into_inner).clone();
            log.into_iter().filter(|r| r.position > after).try_for_each(each)
        }
        fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
            if self.fail.load(Ordering::Acquire) {
                return Err(StoreError("disk full".into()));
            }
            self.log.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(records);
            Ok(())
        }
        fn save_snapshot(&mut self, position: u64, _: u64, state: &[u8]) -> Result<(), StoreError> {
            self.snapshots.push((position, state.to_vec()));
            Ok(())
        }
    }

    /// A store with no snapshot whose log cannot be read (an I/O error).
    struct Unreadable;

    impl Store for Unreadable {
        fn snapshots(&mut self) -> Result<Vec<u64>, StoreError> {
            Ok(Vec::new())
        }
        fn read_snapshot(&mut self, _: u64) -> Result<Vec<u8>, StoreError> {
            Err(StoreError("no snapshot".into()))
        }
        fn read_log(
            &mut self,
            _: u64,
            _: &mut dyn FnMut(Record) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            Err(StoreError("disk I/O error".into()))
        }
        fn append(&mut self, _: &[Record]) -> Result<(), StoreError> {
            Err(StoreError("read-only".into()))
        }
        fn save_snapshot(&mut self, _: u64, _: u64, _: &[u8]) -> Result<(), StoreError> {
            panic!("a chat was started over a store that could not be read");
        }
    }

    #[test]
    fn a_log_that_cannot_be_read_is_an_error_not_a_fresh_chat() {
        let config = ServerConfig::default();
        let fresh = || Hub::fresh_core(&config).expect("a fresh core");
        let error = recover(&mut Unreadable, fresh).err().expect("recovery refuses");
        assert!(error.0.contains("disk I/O error"), "{error}");
    }

    fn checkin(session: SessionId) -> Input {
        let command = Command::Checkin {
            client_id: "ada".into(),
            name: None,
            capabilities: Vec::new(),
            resume_token: None,
        };
        Input::Command { session, command, act_as: None }
    }

    #[tokio::test]
    async fn a_failed_write_applies_nothing_and_the_next_one_goes_through() {
        let config = Arc::new(ServerConfig::default());
        let hub = Hub::new(config, Arc::default(), CancellationToken::new()).expect("hub");
        let fail = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let store = Flaky { fail: fail.clone(), log: log.clone(), snapshots: Vec::new() };
        let cadence = Cadence { batch: 16, every: 1_000, interval: Duration::from_secs(3600) };
        hub.attach_log(crate::state::log::Log::Journal(Journal::start(
            hub.clone(),
            Box::new(store),
            0,
            0,
            cadence,
        )));

        let Ok(Applied::Opened(session)) =
            hub.apply(Input::Open { key: None, meta: None, lease: false }).await
        else {
            panic!("a session opens");
        };
        fail.store(true, Ordering::Release);
        let refused = hub.apply(checkin(session)).await.expect_err("the store refuses the write");
        assert!(
            refused.to_string().contains("disk full") && refused.to_string().contains("retry"),
            "{refused}"
        );
        assert_eq!(hub.read(|chat| chat.session_user(session).cloned()), None, "nothing was applied");

        fail.store(false, Ordering::Release);
        let applied = hub.apply(checkin(session)).await.expect("the store is back");
        assert!(matches!(applied.reply(), Some(Ok(_))), "{applied:?}");
        assert_eq!(
            hub.read(|chat| chat.session_user(session).map(|u| u.to_string())).as_deref(),
            Some("ada")
        );
        let positions: Vec<u64> =
            log.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|r| r.position).collect();
        assert_eq!(positions, [1, 2], "the refused input left no hole in the log");
        hub.log().expect("journal").stop().await;
    }
}
