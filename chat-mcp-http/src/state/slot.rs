//! Per-session state of the adapter: the link between one MCP session and its core
//! [`SessionId`], its outgoing stream, the signal that wakes its waiting tools, its
//! resource subscriptions and its requests in flight. Whether the client is still there
//! is the core's decision (`chat_core::Chat::hold`), not the slot's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chat_core::SessionId;
use rmcp::model::ProtocolVersion;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::edge::ConnectionCloser;
use crate::state::outlet::Outlet;

/// Resource URIs one session subscribed to.
#[derive(Default)]
pub struct Subscriptions(Mutex<HashSet<String>>);

impl Subscriptions {
    /// Adds `uri`.
    pub fn add(&self, uri: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(uri.to_owned());
    }
    /// Removes `uri`.
    pub fn remove(&self, uri: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uri);
    }
    /// Whether `uri` is subscribed.
    pub fn contains(&self, uri: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(uri)
    }
    /// Whether nothing is subscribed (the common case: skip all resource work).
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }
}

/// One MCP session.
pub struct Slot {
    /// The core's handle for this session.
    pub id: SessionId,
    /// The `Mcp-Session-Id` the client sends.
    pub mcp_id: Arc<str>,
    /// What the server sends on the session's GET stream.
    pub outlet: Outlet,
    wake: watch::Sender<u64>,
    subscriptions: Arc<Subscriptions>,
    ended: AtomicBool,
    /// Cancelled as soon as the session is ending, so blocking tools
    /// (`wait_for_events`, `send_message_and_wait`) return at once.
    ending: CancellationToken,
    /// Open GET streams (0 or 1 once a reconnect has replaced the old one).
    streams: AtomicUsize,
    /// Blocking requests in flight, by JSON-RPC id, for `notifications/cancelled`.
    in_flight: Mutex<HashMap<String, CancellationToken>>,
    /// The protocol revision negotiated at `initialize`: what the session's messages may
    /// look like depends on it (batches exist only in 2025-03-26; SSE priming events only
    /// from 2025-11-25 on).
    protocol_version: OnceLock<ProtocolVersion>,
    /// The client address the session counts under (see `hub::address_key`), if known.
    address: Option<IpAddr>,
    /// Keep-alive pings: which are unanswered, whether the client ever answered one.
    pings: Mutex<Pings>,
    /// Frames the session's GET streams have taken from the outlet (see [`Slot::frame_taken`]).
    frames_taken: AtomicU64,
    /// The connection of the current GET stream, with the stream's generation, so a
    /// stream whose client stopped answering pings can be dropped like a broken one.
    stream_connection: Mutex<Option<(u64, ConnectionCloser)>>,
    /// For a session of the session-less revision (2026-07-28): the secret id in its
    /// inbox URI (see `resources::inbox_uri`), and the `subscriptions/listen` streams
    /// that watch it.
    inbox: OnceLock<Arc<str>>,
    listeners: Mutex<Vec<mpsc::Sender<()>>>,
}

/// `notifications/resources/updated` a listen stream may have queued and not yet sent;
/// further ones are dropped until it catches up (each only says "fetch", and the fetch
/// with a cursor returns everything new).
pub const LISTEN_QUEUE: usize = 64;

/// The keep-alive ping state of one session (see `session::keepalive`).
#[derive(Default)]
struct Pings {
    /// The oldest unanswered ping: its number and when it was sent.
    oldest_unanswered: Option<(u64, Instant)>,
    /// Whether the client has ever answered a ping. Only then is an unanswered one a sign
    /// that it is gone: many clients never answer any.
    answers: bool,
    /// `frames_taken` when the last overdue ping was looked at.
    taken_at_check: u64,
}

/// What an overdue ping says about a session's client (see [`Slot::judge_pings`]).
#[derive(Debug, PartialEq, Eq)]
pub enum PingVerdict {
    /// Nothing overdue, or a client that never answers pings.
    Fine,
    /// Overdue, but the stream is taking frames of a backlog: give it more time.
    Draining,
    /// Overdue and the stream is not moving: the client is hung or stopped.
    Unresponsive,
}

impl Slot {
    /// A slot for a freshly opened core session; its stream may fall `cap` messages
    /// behind and keeps `replay` for reconnects.
    pub fn new(id: SessionId, mcp_id: Arc<str>, cap: usize, replay: usize) -> Self {
        Slot {
            id,
            mcp_id,
            outlet: Outlet::new(cap, replay),
            wake: watch::Sender::new(0),
            subscriptions: Arc::default(),
            ended: AtomicBool::new(false),
            ending: CancellationToken::new(),
            streams: AtomicUsize::new(0),
            in_flight: Mutex::default(),
            protocol_version: OnceLock::new(),
            address: None,
            pings: Mutex::default(),
            frames_taken: AtomicU64::new(0),
            stream_connection: Mutex::default(),
            inbox: OnceLock::new(),
            listeners: Mutex::default(),
        }
    }

    /// Makes this a session of the session-less revision, its inbox named by `inbox`.
    pub fn with_inbox(self, inbox: Arc<str>) -> Self {
        let _ = self.inbox.set(inbox);
        self
    }

    /// The secret id of the inbox of a session-less (2026-07-28) session; `None` for a
    /// session of the 2025 revisions.
    pub fn inbox(&self) -> Option<&Arc<str>> {
        self.inbox.get()
    }

    /// What logs call this session besides its core id: the `Mcp-Session-Id`, or for a
    /// session-less session nothing, since its key is the handle, a credential.
    pub fn log_name(&self) -> &str {
        if self.is_sessionless() { "(handle)" } else { &self.mcp_id }
    }

    /// Whether this is a session of the session-less revision: named by a handle in tool
    /// arguments, never by `Mcp-Session-Id`.
    pub fn is_sessionless(&self) -> bool {
        self.inbox.get().is_some()
    }

    /// A new `subscriptions/listen` stream on this session's inbox: it receives a unit
    /// for each new event (at most [`LISTEN_QUEUE`] queued).
    pub fn listen(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel(LISTEN_QUEUE);
        self.listeners.lock().unwrap_or_else(PoisonError::into_inner).push(tx);
        rx
    }

    /// Tells the listen streams that a new event exists; forgets those that ended.
    pub fn notify_listeners(&self) -> usize {
        let mut listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|tx| !tx.is_closed());
        listeners.iter().filter(|tx| tx.try_send(()).is_ok()).count()
    }

    /// The slot, counted under the client address `address` (see `hub::address_key`).
    pub fn with_address(mut self, address: Option<IpAddr>) -> Self {
        self.address = address;
        self
    }

    /// The client address the session counts under, if known.
    pub fn address(&self) -> Option<IpAddr> {
        self.address
    }

    /// Records the protocol revision negotiated at `initialize`. It is set once, before
    /// the client learns the session id; later calls change nothing.
    pub fn set_protocol_version(&self, version: ProtocolVersion) {
        let _ = self.protocol_version.set(version);
    }

    /// The protocol revision negotiated at `initialize` (`None` only before it is set).
    pub fn protocol_version(&self) -> Option<&ProtocolVersion> {
        self.protocol_version.get()
    }

    /// Wakes the session's waiting tools: an event with this seq exists now.
    pub fn wake(&self, seq: u64) {
        self.wake.send_replace(seq);
    }

    /// A receiver that sees every later [`Slot::wake`]. Subscribe *before* checking the
    /// core, so an event arriving in between is not missed.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// The session's resource subscriptions.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// Marks the session as ending: blocking tools return. `true` for the first call
    /// only, so the end is reported once.
    pub fn mark_end(&self) -> bool {
        let first = !self.ended.swap(true, Ordering::AcqRel);
        self.ending.cancel();
        first
    }

    /// Resolves once the session is ending (see [`Slot::mark_end`]).
    pub fn ending(&self) -> &CancellationToken {
        &self.ending
    }

    /// A GET stream opened.
    pub fn stream_opened(&self) {
        self.streams.fetch_add(1, Ordering::AcqRel);
    }

    /// A GET stream closed.
    pub fn stream_closed(&self) {
        self.streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the client holds a GET stream open.
    pub fn is_listening(&self) -> bool {
        self.streams.load(Ordering::Acquire) > 0
    }

    /// Keep-alive ping number `n` was queued on the session's stream at `at`.
    pub fn ping_sent(&self, n: u64, at: Instant) {
        let mut pings = self.pings.lock().unwrap_or_else(PoisonError::into_inner);
        pings.oldest_unanswered.get_or_insert((n, at));
    }

    /// The client answered (with a result or an error) the request with JSON-RPC id
    /// `id`. An answer to a keep-alive ping answers every earlier one too: `true` if it
    /// was one.
    pub fn ping_answered(&self, id: &str) -> bool {
        let Some(n) = id.strip_prefix(crate::state::notify::PING_PREFIX).and_then(|n| n.parse::<u64>().ok())
        else {
            return false;
        };
        let mut pings = self.pings.lock().unwrap_or_else(PoisonError::into_inner);
        pings.answers = true;
        if pings.oldest_unanswered.is_some_and(|(oldest, _)| oldest <= n) {
            pings.oldest_unanswered = None;
        }
        true
    }

    /// Whether the client has a ping unanswered for longer than `timeout` at `now`, and
    /// what that means: only a client that has answered pings before is judged, and a
    /// stream that took frames since the last look while more are queued is draining a
    /// backlog (its client may be busy reading it), not stuck.
    pub fn judge_pings(&self, now: Instant, timeout: std::time::Duration) -> PingVerdict {
        let mut pings = self.pings.lock().unwrap_or_else(PoisonError::into_inner);
        let overdue =
            pings.oldest_unanswered.is_some_and(|(_, at)| now.saturating_duration_since(at) >= timeout);
        if !overdue || !pings.answers {
            return PingVerdict::Fine;
        }
        let taken = self.frames_taken.load(Ordering::Acquire);
        let moving = taken != pings.taken_at_check;
        pings.taken_at_check = taken;
        if moving && !self.outlet.is_drained() { PingVerdict::Draining } else { PingVerdict::Unresponsive }
    }

    /// When the client's oldest unanswered ping becomes overdue, if it is judged by pings.
    pub fn ping_due(&self, timeout: std::time::Duration) -> Option<Instant> {
        let pings = self.pings.lock().unwrap_or_else(PoisonError::into_inner);
        pings.oldest_unanswered.filter(|_| pings.answers).map(|(_, at)| at + timeout)
    }

    /// The GET stream took one frame from the outlet.
    pub fn frame_taken(&self) {
        self.frames_taken.fetch_add(1, Ordering::AcqRel);
    }

    /// GET stream `generation` runs on the connection `closer` closes. A new stream
    /// starts with no ping unanswered: it is judged afresh.
    pub fn stream_on(&self, generation: u64, closer: Option<ConnectionCloser>) {
        *self.stream_connection.lock().unwrap_or_else(PoisonError::into_inner) =
            closer.map(|c| (generation, c));
        self.pings.lock().unwrap_or_else(PoisonError::into_inner).oldest_unanswered = None;
    }

    /// GET stream `generation` ended.
    pub fn stream_off(&self, generation: u64) {
        let mut connection = self.stream_connection.lock().unwrap_or_else(PoisonError::into_inner);
        if connection.as_ref().is_some_and(|(g, _)| *g == generation) {
            *connection = None;
        }
    }

    /// Drops the connection of the current GET stream, as if the client's network had
    /// gone: the stream ends and reports its end as usual. `false` if there is none.
    pub fn drop_stream_connection(&self) -> bool {
        let connection = self.stream_connection.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.pings.lock().unwrap_or_else(PoisonError::into_inner).oldest_unanswered = None;
        connection.map(|(_, closer)| closer.close()).is_some()
    }

    /// Registers a blocking request so `notifications/cancelled` can stop it; the
    /// registration ends when the guard is dropped.
    pub fn track_request(self: &Arc<Self>, id: String, token: CancellationToken) -> InFlight {
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), token);
        InFlight { slot: self.clone(), id }
    }

    /// Cancels the blocking request with this JSON-RPC id, if it is in flight.
    pub fn cancel_request(&self, id: &str) {
        if let Some(token) = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(id) {
            token.cancel();
        }
    }
}

/// Keeps a blocking request cancellable while it runs.
pub struct InFlight {
    slot: Arc<Slot>,
    id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.slot.in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_a_client_that_answered_before_is_judged_by_pings() {
        let slot = Slot::new(SessionId(1), Arc::from("s"), 4, 4);
        let start = Instant::now();
        let timeout = Duration::from_secs(1);
        let later = start + Duration::from_secs(2);
        // Never answered: an unanswered ping means nothing.
        slot.ping_sent(1, start);
        assert_eq!(slot.judge_pings(later, timeout), PingVerdict::Fine);
        assert!(slot.ping_answered("keepalive-1"));
        assert!(!slot.ping_answered("42"), "not a keep-alive ping");
        // It answers pings now: one left unanswered past the timeout is a verdict.
        slot.ping_sent(2, start);
        slot.ping_sent(3, start + Duration::from_millis(500));
        assert_eq!(slot.ping_due(timeout), Some(start + timeout), "the oldest counts");
        assert_eq!(slot.judge_pings(start + Duration::from_millis(900), timeout), PingVerdict::Fine);
        assert_eq!(slot.judge_pings(later, timeout), PingVerdict::Unresponsive);
        // An answer to a later ping answers the earlier ones.
        slot.ping_answered("keepalive-3");
        assert_eq!(slot.judge_pings(later, timeout), PingVerdict::Fine);
    }

    #[test]
    fn a_stream_that_drains_a_backlog_is_given_time() {
        let slot = Slot::new(SessionId(1), Arc::from("s"), 8, 8);
        let _stream = slot.outlet.open(None).expect("open");
        let start = Instant::now();
        let timeout = Duration::from_secs(1);
        slot.ping_answered("keepalive-0");
        slot.ping_sent(1, start);
        for _ in 0..3 {
            slot.outlet.send(Arc::from("x")).expect("queued");
        }
        slot.frame_taken();
        let later = start + Duration::from_secs(2);
        assert_eq!(slot.judge_pings(later, timeout), PingVerdict::Draining);
        // Nothing taken since: stuck.
        assert_eq!(slot.judge_pings(later, timeout), PingVerdict::Unresponsive);
        assert!(!slot.drop_stream_connection(), "no connection recorded");
    }
}
