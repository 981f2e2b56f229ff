//! Per-session state of the adapter: the link between one MCP session and its core
//! [`SessionId`], its outgoing stream, the signal that wakes its waiting tools, its
//! resource subscriptions and its requests in flight. Whether the client is still there
//! is the core's decision (`chat_core::Chat::hold`), not the slot's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chat_core::SessionId;
use rmcp::model::ProtocolVersion;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
        }
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
