//! The one owner of the [`Chat`] state and the registry of live sessions.
//!
//! The core sits behind a `std::sync::Mutex` that is held only for synchronous core calls
//! (microseconds) and never across an `.await`. Events produced by a call are drained
//! into a `Vec` while the lock is held and dispatched after it is released: each is
//! serialized once and queued on its session's [`Outlet`](crate::state::outlet::Outlet),
//! which never blocks the sender, and wakes that session's waiting tools. A slow or
//! stalled client therefore only ever delays its own notifications.
//!
//! Every change to the core is an [`Input`] and goes through [`Hub::apply`]. With the
//! `memory` store it is applied at once under the lock; with a durable store it is handed
//! to the [`Journal`], which logs it first and applies it after (so nothing a client sees
//! was not saved). Reads that change nothing ([`Hub::read`]) take the lock directly.
//!
//! Why a mutex rather than a task fed by a channel: a call then costs one short lock
//! instead of a channel send, a task switch and a oneshot reply. Measured with
//! `examples/owner_bench.rs` (64 tasks on 2 cores, release): about 1.4 M calls/s with a
//! p50 of 0.4 µs for the mutex against 0.55 M calls/s and a p50 of 53 µs for the actor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use chat_core::{
    ActAs, Answer, Applied, Chat, Command, Config, Event, Hold, Input, Outbound, SessionEnd, SessionId,
    Stats, Time,
};
use rmcp::model::ProtocolVersion;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::metrics::{CoreGauges, Metrics};
use crate::resources;
use crate::state::clock;
use crate::state::journal::Unsaved;
use crate::state::log::Log;
use crate::state::notify;
use crate::state::outlet::Missed;
use crate::state::slot::Slot;

/// Shared state of the whole server.
pub struct Hub {
    core: Mutex<Chat>,
    slots: RwLock<HashMap<SessionId, Arc<Slot>>>,
    by_mcp: RwLock<HashMap<Arc<str>, SessionId>>,
    /// Session-less (2026-07-28) sessions by the secret id in their inbox URI.
    by_inbox: RwLock<HashMap<Arc<str>, SessionId>>,
    /// The deadline (ms) the timer task currently sleeps until; `u64::MAX` = none.
    armed: AtomicU64,
    timer_wake: Notify,
    live_sessions: AtomicUsize,
    /// Live sessions per client address (see [`address_key`]), for
    /// `--max-sessions-per-address`. Entries go when their count reaches zero.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Wrong resume tokens per client address (`--max-bad-tokens`).
    pub guesses: crate::state::guesses::Guesses,
    shutdown: CancellationToken,
    /// The log of a durable store; unset with `memory` (inputs are applied directly).
    log: OnceLock<Log>,
    /// Server settings (waits, limits).
    pub config: Arc<ServerConfig>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
}

/// Why a session could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// `--max-sessions` reached.
    Full(usize),
    /// `--max-sessions-per-address` reached for the client's address.
    AddressFull(usize),
    /// The server is shutting down.
    ShuttingDown,
    /// The store did not take the new session.
    Unsaved(Unsaved),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Full(max) => write!(f, "the server has reached its limit of {max} sessions"),
            OpenError::AddressFull(max) => write!(
                f,
                "your address already holds its limit of {max} live sessions; end unused ones (DELETE) or let them expire"
            ),
            OpenError::ShuttingDown => f.write_str("the server is shutting down"),
            OpenError::Unsaved(unsaved) => unsaved.fmt(f),
        }
    }
}

impl Hub {
    /// A hub with a fresh core seeded from the OS.
    ///
    /// Fails only if the OS cannot provide randomness: ids and resume tokens would be
    /// guessable without it, so the server refuses to start.
    pub fn new(
        config: Arc<ServerConfig>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let core = Self::fresh_core(&config)?;
        Ok(Self::restored(config, metrics, shutdown, core))
    }

    /// A fresh core for `config`, seeded from the OS random source.
    pub fn fresh_core(config: &ServerConfig) -> Result<Chat, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| format!("cannot seed the chat core from the OS random source: {e}"))?;
        Ok(Chat::new(Config { seed, limits: config.limits.clone(), registered: config.registered.clone() }))
    }

    /// A hub around `core`, a fresh one or one restored from a store: every session it
    /// holds gets its slot back (same `Mcp-Session-Id`, protocol revision and resource
    /// subscriptions), with a stream that starts after the session's newest event.
    pub fn restored(
        config: Arc<ServerConfig>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        core: Chat,
    ) -> Arc<Self> {
        let mut slots = HashMap::new();
        let mut by_mcp = HashMap::new();
        let mut by_inbox = HashMap::new();
        for id in core.session_ids() {
            let Some(record) = core.session_record(id) else { continue };
            let Some(key) = record.key else { continue };
            let (version, inbox) = parse_meta(record.meta.as_deref());
            let mut slot = Slot::new(id, key.clone(), config.limits.event_buffer, config.stream_replay);
            if let Some(inbox) = inbox {
                by_inbox.insert(inbox.clone(), id);
                slot = slot.with_inbox(inbox);
            }
            if let Some(version) = version {
                slot.set_protocol_version(version);
            }
            for uri in &record.subscriptions {
                slot.subscriptions().add(uri);
            }
            slot.outlet.start_after_event(core.event_cursor(id));
            slots.insert(id, Arc::new(slot));
            by_mcp.insert(key, id);
        }
        let live = slots.len();
        Arc::new(Hub {
            core: Mutex::new(core),
            slots: RwLock::new(slots),
            by_mcp: RwLock::new(by_mcp),
            by_inbox: RwLock::new(by_inbox),
            armed: AtomicU64::new(u64::MAX),
            timer_wake: Notify::new(),
            live_sessions: AtomicUsize::new(live),
            per_address: Mutex::default(),
            guesses: crate::state::guesses::Guesses::new(config.max_bad_tokens, config.bad_token_window),
            shutdown,
            log: OnceLock::new(),
            config,
            metrics,
        })
    }

    /// From now on every input is logged by `log` before it is applied.
    pub fn attach_log(&self, log: Log) {
        if self.log.set(log).is_err() {
            tracing::error!("a log is already attached");
        }
    }

    /// The input log, with a durable store.
    pub fn log(&self) -> Option<&Log> {
        self.log.get()
    }

    /// Whether inputs are logged to a durable store.
    pub fn is_durable(&self) -> bool {
        self.log.get().is_some()
    }

    /// This node's id, when several nodes serve the chat.
    pub fn node(&self) -> Option<u64> {
        self.log.get().and_then(Log::node)
    }

    fn lock(&self) -> MutexGuard<'_, Chat> {
        // The core does not panic on any input; should it ever, keep serving with its state.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the core without changing it (nothing is logged).
    pub fn read<T>(&self, f: impl FnOnce(&Chat) -> T) -> T {
        f(&self.lock())
    }

    /// A copy of the core, for a snapshot.
    pub fn clone_core(&self) -> Chat {
        self.lock().clone()
    }

    /// Applies `inputs` at `at`, hands what they answered to `answer`, then dispatches the
    /// events they caused. The journal calls this once their log entries are durable; the
    /// requests are answered before the pushes are serialized, so they go on at once.
    ///
    /// `foreign` inputs were proposed by another node (see `state/replica.rs`): the
    /// sessions they open get a slot here too, and those they close lose theirs.
    pub fn apply_logged(
        &self,
        at: Time,
        inputs: Vec<Input>,
        foreign: bool,
        answer: impl FnOnce(Vec<Applied>),
    ) {
        let mut opened = Vec::new();
        let mut closed = Vec::new();
        if foreign {
            for (i, input) in inputs.iter().enumerate() {
                match input {
                    Input::Open { key: Some(key), meta, .. } => opened.push((i, key.clone(), meta.clone())),
                    Input::Close { session, .. } => closed.push(*session),
                    _ => {}
                }
            }
        }
        let (applied, batch, deadline, expired) = self.apply_locked(at, |chat, at| {
            inputs.into_iter().map(|input| chat.apply(at, input)).collect::<Vec<_>>()
        });
        for (i, key, meta) in opened {
            if let Some(Applied::Opened(id)) = applied.get(i) {
                self.add_slot(*id, key, meta.as_deref());
            }
        }
        for session in closed {
            let slot = self.slots.read().unwrap_or_else(PoisonError::into_inner).get(&session).cloned();
            if let Some(slot) = slot {
                self.remove(&slot);
            }
        }
        answer(applied);
        self.after_apply(batch, deadline, expired);
    }

    /// A slot for a session another node opened.
    fn add_slot(&self, id: SessionId, key: Arc<str>, meta: Option<&str>) {
        let (version, inbox) = parse_meta(meta);
        let mut slot = Slot::new(id, key.clone(), self.config.limits.event_buffer, self.config.stream_replay);
        if let Some(inbox) = inbox {
            self.by_inbox.write().unwrap_or_else(PoisonError::into_inner).insert(inbox.clone(), id);
            slot = slot.with_inbox(inbox);
        }
        if let Some(version) = version {
            slot.set_protocol_version(version);
        }
        self.slots.write().unwrap_or_else(PoisonError::into_inner).insert(id, Arc::new(slot));
        self.by_mcp.write().unwrap_or_else(PoisonError::into_inner).insert(key, id);
        self.live_sessions.fetch_add(1, Ordering::AcqRel);
        self.metrics.session_opened();
    }

    /// Carries out `input`: logged first with a durable store, applied directly without.
    pub async fn apply(&self, input: Input) -> Result<Applied, Unsaved> {
        match self.log.get() {
            Some(log) => log.submit(input).await,
            None => Ok(self.with_core_at(clock::now(), |chat, at| chat.apply(at, input))),
        }
    }

    /// [`Hub::apply`] for an input whose caller does not wait for it (the ordering of
    /// inputs is kept: it is logged before anything submitted after it).
    pub fn apply_detached(&self, input: Input) {
        match self.log.get() {
            Some(log) => log.submit_detached(input),
            None => {
                self.with_core_at(clock::now(), |chat, at| chat.apply(at, input));
            }
        }
    }

    /// Runs `f` on the core at `at`, then dispatches the events it caused. The lock is
    /// held only while `f` runs.
    fn with_core_at<T>(&self, at: Time, f: impl FnOnce(&mut Chat, Time) -> T) -> T {
        let (out, batch, deadline, expired) = self.apply_locked(at, f);
        self.after_apply(batch, deadline, expired);
        out
    }

    /// Runs `f` on the core under its lock, and drains what it caused.
    fn apply_locked<T>(&self, at: Time, f: impl FnOnce(&mut Chat, Time) -> T) -> Drained<T> {
        let mut chat = self.lock();
        let out = f(&mut chat, at);
        let batch: Vec<Outbound> = std::iter::from_fn(|| chat.poll_outbound()).collect();
        let expired: Vec<SessionId> = std::iter::from_fn(|| chat.poll_expired()).collect();
        (out, batch, chat.poll_timeout(), expired)
    }

    /// After the lock is released: re-arms the timer, pushes the events, forgets the
    /// sessions the core expired.
    fn after_apply(&self, batch: Vec<Outbound>, deadline: Option<Time>, expired: Vec<SessionId>) {
        if let Some(deadline) = deadline
            && deadline.as_millis() < self.armed.load(Ordering::Acquire)
        {
            self.timer_wake.notify_one();
        }
        self.dispatch(batch);
        for session in expired {
            self.forget(session);
        }
    }

    /// Whether an input about a session's connection should be dropped: a durable server
    /// that is stopping keeps its sessions as they are, so a restart is invisible.
    fn frozen(&self) -> bool {
        self.shutdown.is_cancelled() && self.is_durable()
    }

    /// The client of `slot` holds `what` open (a GET stream, a blocking request).
    pub fn hold(&self, slot: &Slot, what: Hold) {
        if !self.frozen() {
            self.apply_detached(Input::Hold { session: slot.id, what, node: self.node() });
        }
    }

    /// The hold `what` of `slot` ended.
    pub fn release(&self, slot: &Slot, what: Hold) {
        if !slot.ending().is_cancelled() && !self.frozen() {
            self.apply_detached(Input::Release { session: slot.id, what, node: self.node() });
        }
    }

    /// Holds `what` for `slot` until the guard is dropped.
    pub fn holding(self: &Arc<Self>, slot: &Arc<Slot>, what: Hold) -> Holding {
        self.hold(slot, what);
        Holding { hub: self.clone(), slot: slot.clone(), what }
    }

    /// The client of `slot` made a request that is not a tool call (tool calls count
    /// through the command they run).
    pub fn touch(&self, slot: &Slot) {
        if !self.frozen() {
            self.apply_detached(Input::Touch { session: slot.id });
        }
    }

    /// The client of `slot` subscribed to (`on`) or unsubscribed from `uri`.
    pub async fn subscribe(&self, slot: &Slot, uri: &str, on: bool) -> Result<(), Unsaved> {
        self.apply(Input::Subscribe { session: slot.id, uri: Arc::from(uri), on }).await?;
        if on {
            slot.subscriptions().add(uri);
        } else {
            slot.subscriptions().remove(uri);
        }
        Ok(())
    }

    /// One command for `session`, acting as `act_as` if given (see [`Input::Command`]).
    pub async fn command(
        &self,
        session: SessionId,
        command: Command,
        act_as: Option<ActAs>,
    ) -> Result<Answer, Unsaved> {
        match self.apply(Input::Command { session, command, act_as }).await? {
            Applied::Replied(answer) => Ok(answer),
            other => Err(Unsaved(format!("the core answered a command with {other:?}"))),
        }
    }

    /// Pending (unacknowledged) events of the participant bound to `session`.
    pub fn pending_events(&self, session: SessionId) -> usize {
        self.read(|chat| chat.pending_events(session))
    }

    /// The events of `session` after position `after` (see `state/outlet.rs`) that the
    /// core still holds, serialized as notifications, as `(seq, message)`.
    pub fn events_after(&self, session: SessionId, after: u64) -> Vec<(u64, Arc<str>)> {
        let events = self.read(|chat| chat.peek_events(session, usize::MAX));
        events
            .iter()
            .filter(|e| crate::state::outlet::event_position(e.seq) > after)
            .filter_map(|e| Some((e.seq, notify::event(e)?)))
            .collect()
    }

    /// Core counters.
    pub fn stats(&self) -> Stats {
        self.read(Chat::stats)
    }

    /// Gauges for `/metrics` and `/healthz`.
    pub fn gauges(&self) -> CoreGauges {
        let stats = self.stats();
        let to = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        CoreGauges {
            sessions: to(self.live_sessions.load(Ordering::Relaxed)),
            queued: to(stats.queued),
            rooms: to(stats.rooms_active),
            participants: to(stats.participants),
            online: to(stats.online),
            inbox_bytes: stats.inbox_bytes,
        }
    }

    /// Hands each event to its session: wakes its waiting tools and queues the
    /// notification (plus `resources/updated` for what it subscribed to) on its stream.
    fn dispatch(&self, batch: Vec<Outbound>) {
        if batch.is_empty() {
            return;
        }
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        for outbound in batch {
            let Some(slot) = slots.get(&outbound.session) else {
                self.metrics.push_failed();
                continue;
            };
            let envelope = &outbound.envelope;
            slot.wake(envelope.seq);
            if slot.is_sessionless() {
                // No session, so no stream for custom notifications: the session's
                // listen streams get `resources/updated` for its inbox, and the client
                // fetches (see `handler.rs`).
                for _ in 0..slot.notify_listeners() {
                    self.metrics.resource_updated();
                }
                continue;
            }
            if let Some(json) = notify::event(envelope) {
                match slot.outlet.send_event(envelope.seq, json) {
                    Ok(()) => self.metrics.event_pushed(),
                    Err(Missed::Full) => self.metrics.push_failed(),
                    Err(Missed::NoStream) => {}
                }
            }
            if slot.subscriptions().is_empty() {
                continue;
            }
            if !matches!(envelope.event, Event::PartnerTyping(_) | Event::DirectTyping(_)) {
                self.push_resource(slot, resources::INBOX_URI.to_owned());
            }
            if let Some(room) = envelope.event.room_id() {
                self.push_resource(slot, resources::room_uri(room));
            }
        }
    }

    /// Queues `resources/updated` for `uri` if the session subscribed to it.
    fn push_resource(&self, slot: &Slot, uri: String) {
        if slot.subscriptions().contains(&uri)
            && let Some(json) = notify::resource_updated(uri)
            && slot.outlet.send(json).is_ok()
        {
            self.metrics.resource_updated();
        }
    }

    /// Queues a `resources/updated` for `session` if it subscribed to `uri`.
    pub fn touch_resource(&self, session: SessionId, uri: String) {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(&session)
            && !slot.subscriptions().is_empty()
        {
            self.push_resource(slot, uri);
        }
    }

    // ----- session lifecycle -----

    /// Why a new session for a client at `address` would be refused right now, if it
    /// would (checked before the body is read; [`Hub::open_session`] checks again).
    pub fn refuses_new_sessions(&self, address: Option<IpAddr>) -> Option<String> {
        if self.shutdown.is_cancelled() {
            return Some(OpenError::ShuttingDown.to_string());
        }
        let max = self.config.max_sessions;
        if self.live_sessions.load(Ordering::Acquire) >= max {
            self.metrics.session_refused();
            return Some(format!("{}; try again later", OpenError::Full(max)));
        }
        let per_address = self.config.max_sessions_per_address;
        let key = address.map(address_key)?;
        let held = self.per_address.lock().unwrap_or_else(PoisonError::into_inner).get(&key).copied();
        (per_address > 0 && held.unwrap_or(0) >= per_address).then(|| {
            self.metrics.count_rejected("sessions_per_address");
            OpenError::AddressFull(per_address).to_string()
        })
    }

    /// Opens a session for a client at `address` (if known) that speaks `version`: a core
    /// session and a slot under a fresh, unguessable `Mcp-Session-Id`.
    pub async fn open_session(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        version: &ProtocolVersion,
    ) -> Result<Arc<Slot>, OpenError> {
        self.open(address, version, false).await
    }

    /// Opens a session of the session-less revision (2026-07-28) for a binding call from
    /// `address`: a leased core session (see `chat_core::Limits::lease`) whose key, the
    /// unguessable handle, the client passes with every later call, and a second secret
    /// for its inbox URI. Both are core state, so they survive a restart.
    pub async fn open_sessionless(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Arc<Slot>, OpenError> {
        self.open(address, &SESSIONLESS_VERSION, true).await
    }

    async fn open(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        version: &ProtocolVersion,
        lease: bool,
    ) -> Result<Arc<Slot>, OpenError> {
        if self.shutdown.is_cancelled() {
            return Err(OpenError::ShuttingDown);
        }
        let key = address.map(address_key);
        if let Some(key) = key {
            let per_address = self.config.max_sessions_per_address;
            let mut counts = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
            let held = counts.entry(key).or_default();
            if per_address > 0 && *held >= per_address {
                self.metrics.count_rejected("sessions_per_address");
                return Err(OpenError::AddressFull(per_address));
            }
            *held += 1;
        }
        let max = self.config.max_sessions;
        if self
            .live_sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_err()
        {
            self.release_address(key);
            self.metrics.session_refused();
            return Err(OpenError::Full(max));
        }
        let mcp_id: Arc<str> = Arc::from(uuid::Uuid::new_v4().simple().to_string());
        let inbox: Option<Arc<str>> = lease.then(|| Arc::from(uuid::Uuid::new_v4().simple().to_string()));
        let meta = Arc::from(session_meta(version, inbox.as_deref()));
        let open = Input::Open { key: Some(mcp_id.clone()), meta: Some(meta), lease };
        let id = match self.apply(open).await {
            Ok(Applied::Opened(id)) => id,
            other => {
                self.live_sessions.fetch_sub(1, Ordering::AcqRel);
                self.release_address(key);
                let unsaved = match other {
                    Err(unsaved) => unsaved,
                    Ok(applied) => Unsaved(format!("the core answered a new session with {applied:?}")),
                };
                return Err(OpenError::Unsaved(unsaved));
            }
        };
        let mut slot =
            Slot::new(id, mcp_id.clone(), self.config.limits.event_buffer, self.config.stream_replay)
                .with_address(key);
        if let Some(inbox) = inbox {
            self.by_inbox.write().unwrap_or_else(PoisonError::into_inner).insert(inbox.clone(), id);
            slot = slot.with_inbox(inbox);
        }
        slot.set_protocol_version(version.clone());
        let slot = Arc::new(slot);
        self.slots.write().unwrap_or_else(PoisonError::into_inner).insert(id, slot.clone());
        self.by_mcp.write().unwrap_or_else(PoisonError::into_inner).insert(mcp_id, id);
        self.metrics.session_opened();
        tracing::debug!(session = %id, mcp_session = %slot.log_name(), "session opened");
        Ok(slot)
    }

    /// One session of the client address `key` ended (or was never opened).
    fn release_address(&self, key: Option<IpAddr>) {
        let Some(key) = key else { return };
        let mut counts = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = counts.get_mut(&key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&key);
            }
        }
    }

    /// The slot of a session-less session by the secret id of its inbox URI.
    pub fn slot_by_inbox(&self, inbox: &str) -> Option<Arc<Slot>> {
        let id = *self.by_inbox.read().unwrap_or_else(PoisonError::into_inner).get(inbox)?;
        self.slots.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// The slot of an MCP session id (or of a session-less session's handle), if the
    /// session is live.
    pub fn slot_by_mcp(&self, mcp_id: &str) -> Option<Arc<Slot>> {
        let id = *self.by_mcp.read().unwrap_or_else(PoisonError::into_inner).get(mcp_id)?;
        self.slots.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// Ends a session on the adapter's decision (the first call wins): blocking tools
    /// return, its stream closes, and the core is told `how` (`Closed` = the client left
    /// on purpose, `Lost` = the server gives it up, which starts the reconnect grace).
    pub async fn end_session(&self, slot: &Slot, how: SessionEnd) {
        if !self.remove(slot) {
            return;
        }
        if !self.shutdown.is_cancelled()
            && let Err(unsaved) = self.apply(Input::Close { session: slot.id, how }).await
        {
            tracing::warn!(session = %slot.id, %unsaved, "the end of a session was not saved");
        }
        tracing::info!(session = %slot.id, mcp_session = %slot.log_name(), ?how, "session ended");
    }

    /// A session the core ended (lost and not back within the reconnect grace, or a
    /// silent single-call session): from now on its id is answered with `404`.
    fn forget(&self, session: SessionId) {
        let slot = self.slots.read().unwrap_or_else(PoisonError::into_inner).get(&session).cloned();
        if let Some(slot) = slot
            && self.remove(&slot)
        {
            self.metrics.session_lost();
            tracing::info!(session = %slot.id, mcp_session = %slot.log_name(), "session expired");
        }
    }

    /// Takes a session out of the registry; `true` for the first call only.
    fn remove(&self, slot: &Slot) -> bool {
        if !slot.mark_end() {
            return false;
        }
        slot.outlet.close();
        self.slots.write().unwrap_or_else(PoisonError::into_inner).remove(&slot.id);
        self.by_mcp.write().unwrap_or_else(PoisonError::into_inner).remove(&slot.mcp_id);
        if let Some(inbox) = slot.inbox() {
            self.by_inbox.write().unwrap_or_else(PoisonError::into_inner).remove(inbox);
        }
        self.live_sessions.fetch_sub(1, Ordering::AcqRel);
        self.release_address(slot.address());
        self.metrics.session_closed();
        true
    }

    /// Every live session (for keep-alive pings and shutdown).
    pub fn sessions(&self) -> Vec<Arc<Slot>> {
        self.slots.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    // ----- time and shutdown -----

    /// The timer: sleeps until the core's next deadline, ticks it, repeats. A call that
    /// creates an earlier deadline wakes it to re-arm.
    pub async fn run_timer(self: Arc<Self>) {
        loop {
            let wake = self.timer_wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let deadline = self.read(Chat::poll_timeout);
            self.armed.store(deadline.map_or(u64::MAX, Time::as_millis), Ordering::Release);
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep(clock::until(at, clock::now())).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {
                    if let Err(unsaved) = self.apply(Input::Tick).await {
                        // The store is failing: try again shortly, not in a hot loop.
                        tracing::debug!(%unsaved, "a tick was not saved");
                        tokio::time::sleep(TICK_RETRY).await;
                    } else if self.read(Chat::poll_timeout) == deadline {
                        // Several nodes: the tick's time is the shared log's clock, which
                        // may trail this machine's by a few milliseconds. Wait for it.
                        tokio::time::sleep(TICK_SKEW).await;
                    }
                }
                () = &mut wake => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// A future that completes when shutdown begins.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Begins shutdown. With `memory` every room ends (partners are told `shutdown`) and
    /// those notifications are queued; with a durable store nothing changes in the core:
    /// the sessions, rooms and streams are all there again after the restart.
    /// Call before closing the sessions.
    pub async fn begin_shutdown(&self) {
        if !self.is_durable() {
            let _ = self.apply(Input::Shutdown).await;
        }
        self.shutdown.cancel();
    }

    /// Waits (up to `limit`) until every open stream has taken its queued messages.
    pub async fn flush(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let busy = {
                let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
                slots.values().any(|s| !s.outlet.is_drained())
            };
            if !busy || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// What a core call returned, with the events, next deadline and expired sessions it left.
type Drained<T> = (T, Vec<Outbound>, Option<Time>, Vec<SessionId>);

/// How long the timer waits before it retries a tick the store did not take.
const TICK_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// How long the timer waits when a tick came too early by the log's clock (see
/// [`Hub::run_timer`]).
const TICK_SKEW: std::time::Duration = std::time::Duration::from_millis(5);

/// The revision whose sessions are session-less (see [`Hub::open_sessionless`]).
pub const SESSIONLESS_VERSION: ProtocolVersion = ProtocolVersion::V_2026_07_28;

/// What marks the inbox id in a session's core note (see [`session_meta`]).
const INBOX_META: &str = " inbox:";

/// The note the core keeps about a session for this adapter: its protocol revision, and
/// for a session-less one ` inbox:` and the secret id of its inbox URI.
fn session_meta(version: &ProtocolVersion, inbox: Option<&str>) -> String {
    match inbox {
        Some(inbox) => format!("{}{INBOX_META}{inbox}", version.as_str()),
        None => version.as_str().to_owned(),
    }
}

/// The protocol revision and inbox id of a session's core note (see [`session_meta`]).
fn parse_meta(meta: Option<&str>) -> (Option<ProtocolVersion>, Option<Arc<str>>) {
    let Some(meta) = meta else { return (None, None) };
    let (version, inbox) = match meta.split_once(INBOX_META) {
        Some((version, inbox)) => (version, Some(Arc::from(inbox))),
        None => (meta, None),
    };
    (serde_json::from_value(serde_json::Value::String(version.to_owned())).ok(), inbox)
}

/// The address a per-address limit counts a client under: an IPv4 address (also when
/// written as an IPv4-mapped IPv6 one), or the /64 prefix of an IPv6 address, because one
/// IPv6 host usually has a whole /64 to pick addresses from.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// Keeps a hold (see [`Hub::holding`]) until dropped.
pub struct Holding {
    hub: Arc<Hub>,
    slot: Arc<Slot>,
    what: Hold,
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.hub.release(&self.slot, self.what);
    }
}
