//! Per-session state of the adapter: the link between one MCP session and its core
//! [`SessionId`], its push queue, the signal that wakes its waiting tools, its resource
//! subscriptions and when the client was last heard from.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chat_core::{SessionEnd, SessionId};
use rmcp::{Peer, RoleServer};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::state::clock;
use crate::state::notify::Push;

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

/// One live MCP session as the adapter sees it.
pub struct Slot {
    /// The core's handle for this session.
    pub id: SessionId,
    mcp_id: OnceLock<Arc<str>>,
    peer: OnceLock<Peer<RoleServer>>,
    tx: mpsc::UnboundedSender<Push>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Push>>>,
    queued: Arc<AtomicUsize>,
    /// Most pushes queued for a client that does not keep up; beyond it pushes are
    /// skipped (the events stay fetchable with `wait_for_events`).
    cap: usize,
    wake: watch::Sender<u64>,
    subscriptions: Arc<Subscriptions>,
    end: Mutex<Option<SessionEnd>>,
    /// Cancelled as soon as the session is known to be ending, so blocking tools
    /// (`wait_for_events`, `send_message_and_wait`) return at once instead of holding the
    /// session open: rmcp waits for in-flight calls before it closes a session.
    ending: CancellationToken,
    /// When the client last sent a request in this session ([`clock::monotonic_ms`]).
    last_request: AtomicU64,
}

impl Slot {
    /// A slot for a freshly opened core session. Pushes queue up (at most `cap`) until
    /// the pusher starts.
    pub fn new(id: SessionId, cap: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Slot {
            id,
            mcp_id: OnceLock::new(),
            peer: OnceLock::new(),
            tx,
            rx: Mutex::new(Some(rx)),
            queued: Arc::new(AtomicUsize::new(0)),
            cap: cap.max(16),
            wake: watch::Sender::new(0),
            subscriptions: Arc::default(),
            end: Mutex::new(None),
            ending: CancellationToken::new(),
            last_request: AtomicU64::new(clock::monotonic_ms()),
        }
    }

    /// The MCP `Mcp-Session-Id`, once known.
    pub fn mcp_id(&self) -> Option<&str> {
        self.mcp_id.get().map(|s| &**s)
    }

    /// Sets the MCP session id; `false` if it was already set.
    pub fn set_mcp_id(&self, id: Arc<str>) -> bool {
        self.mcp_id.set(id).is_ok()
    }

    /// The client's peer, once the session is initialized.
    pub fn peer(&self) -> Option<&Peer<RoleServer>> {
        self.peer.get()
    }

    /// Records the client's peer (first call wins).
    pub fn set_peer(&self, peer: Peer<RoleServer>) {
        let _ = self.peer.set(peer);
    }

    /// The receiving end of the push queue, for the pusher task (only once).
    pub fn take_receiver(&self) -> Option<(mpsc::UnboundedReceiver<Push>, Arc<AtomicUsize>)> {
        let rx = self.rx.lock().unwrap_or_else(PoisonError::into_inner).take()?;
        Some((rx, self.queued.clone()))
    }

    /// Queues a notification for this session. Never blocks. Returns `false` if it was
    /// skipped because the client is `cap` notifications behind (or gone).
    pub fn push(&self, push: Push) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.cap || self.tx.send(push).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Notifications queued and not yet handed to rmcp.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
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
    pub fn subscriptions(&self) -> Arc<Subscriptions> {
        self.subscriptions.clone()
    }

    /// Records how the session is ending, unless a reason was recorded already.
    pub fn mark_end(&self, how: SessionEnd) {
        let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        end.get_or_insert(how);
        self.ending.cancel();
    }

    /// Resolves once the session is ending (see [`Slot::mark_end`]).
    pub fn ending(&self) -> &CancellationToken {
        &self.ending
    }

    /// Records that the client sent a request in this session just now.
    pub fn touch(&self) {
        self.last_request.store(clock::monotonic_ms(), Ordering::Relaxed);
    }

    /// How long since the client's last request (or since the session opened).
    pub fn since_last_request(&self) -> Duration {
        let idle = clock::monotonic_ms().saturating_sub(self.last_request.load(Ordering::Relaxed));
        Duration::from_millis(idle)
    }

    /// How the session ended: `Closed` only when the client said so (HTTP DELETE);
    /// everything else (dropped stream, idle timeout, server stop) counts as `Lost`.
    pub fn end_reason(&self) -> SessionEnd {
        self.end.lock().unwrap_or_else(PoisonError::into_inner).unwrap_or(SessionEnd::Lost)
    }
}
