//! Learning when an MCP session ends, which rmcp does not report by itself, and ending
//! sessions that went quiet.
//!
//! Three signals, combined:
//! - **Handler drop** (see `handler.rs`): rmcp creates one handler per session and drops
//!   it when the session ends for any reason (DELETE, idle timeout, server stop, or a
//!   close requested here). Its guard tells the core. This is the single place where
//!   `session_closed` is reported.
//! - **HTTP DELETE** ([`track_requests`]): the client ended the session on purpose, so
//!   the core is told `Closed` (partner hears `left` at once) instead of `Lost`.
//! - **GET stream watching** ([`TrackingSessionManager`]): a client killed with SIGKILL
//!   sends no DELETE; the only trace is its SSE stream dropping. When a session's last
//!   GET stream has been gone for `--stream-grace` without reconnecting, the session is
//!   closed as `Lost`, which starts the core's reconnect grace.
//!
//! **Idle sessions.** rmcp's own idle timer is off: it sees only what passes through
//! rmcp, and calls answered on the direct path (`direct.rs`) do not. Instead every request
//! marks its session active ([`track_requests`]), and [`TrackingSessionManager::reap_idle`]
//! closes (as `Lost`) a session that has had no request for `--session-idle-timeout` and
//! holds no GET stream. A listening client therefore stays as long as its stream is open;
//! it is also sent a `ping` every `--keepalive-ping`, so a stream to a vanished client
//! fails to write and drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chat_core::SessionEnd;
use futures::{Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, PingRequest, ServerJsonRpcMessage, ServerRequest};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId, SessionManager};
use tokio_util::sync::CancellationToken;

use crate::state::hub::Hub;

/// Inserted into the `initialize` request's extensions so the handler learns its own
/// `Mcp-Session-Id` (the header does not exist yet on that request).
#[derive(Clone, Debug)]
pub struct McpSessionId(pub Arc<str>);

#[derive(Default)]
struct StreamState {
    open: usize,
    ping: Option<CancellationToken>,
    grace: Option<CancellationToken>,
}

/// rmcp's [`LocalSessionManager`] plus GET-stream tracking and keep-alive pings.
pub struct TrackingSessionManager {
    inner: LocalSessionManager,
    hub: Arc<Hub>,
    streams: Mutex<HashMap<Arc<str>, StreamState>>,
    me: Weak<TrackingSessionManager>,
}

impl TrackingSessionManager {
    /// Wraps `inner`, reporting to `hub`.
    pub fn new(inner: LocalSessionManager, hub: Arc<Hub>) -> Arc<Self> {
        Arc::new_cyclic(|me| TrackingSessionManager { inner, hub, streams: Mutex::default(), me: me.clone() })
    }

    fn track<S>(
        &self,
        id: &SessionId,
        stream: S,
    ) -> impl Stream<Item = ServerSseMessage> + Send + Sync + 'static
    where
        S: Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    {
        self.stream_opened(id);
        let guard = StreamGuard { manager: self.me.clone(), id: id.clone() };
        stream.map(move |message| {
            let _keep = &guard;
            message
        })
    }

    fn stream_opened(&self, id: &SessionId) {
        self.hub.metrics.get_stream(1);
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let state = streams.entry(id.clone()).or_default();
        state.open += 1;
        if let Some(grace) = state.grace.take() {
            grace.cancel();
            tracing::debug!(mcp_session = %id, "SSE stream reconnected within the stream grace");
        }
        if state.ping.is_none() {
            let token = CancellationToken::new();
            state.ping = Some(token.clone());
            tokio::spawn(keepalive(self.hub.clone(), id.clone(), token));
        }
    }

    fn stream_closed(&self, id: &SessionId) {
        self.hub.metrics.get_stream(-1);
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = streams.get_mut(id) else { return };
        state.open = state.open.saturating_sub(1);
        if state.open > 0 {
            return;
        }
        if let Some(ping) = state.ping.take() {
            ping.cancel();
        }
        if self.hub.is_shutting_down() || self.hub.slot_by_mcp(id).is_none() {
            streams.remove(id);
            return;
        }
        let token = CancellationToken::new();
        state.grace = Some(token.clone());
        tracing::debug!(mcp_session = %id, "SSE stream dropped; waiting for the client to reconnect");
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(lose_after_grace(self.me.clone(), id.clone(), token));
    }

    /// Closes, every so often, the sessions with no request for `--session-idle-timeout`
    /// and no open GET stream, until shutdown. Started once by the app.
    pub async fn reap_idle(self: Arc<Self>) {
        let limit = self.hub.config.session_idle_timeout;
        let every = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let shutdown = self.hub.shutdown_token().clone();
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            for id in self.hub.quiet_sessions(limit) {
                let listening = {
                    let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
                    streams.get(&id).is_some_and(|s| s.open > 0)
                };
                if listening {
                    continue;
                }
                tracing::info!(mcp_session = %id, ?limit, "closing an idle session");
                self.hub.mark_end(&id, SessionEnd::Lost);
                if let Err(error) = self.inner.close_session(&id).await {
                    tracing::warn!(mcp_session = %id, %error, "closing an idle session failed");
                }
            }
        }
    }

    /// Closes a session whose stream did not come back (if it still has none).
    async fn close_lost(&self, id: &SessionId) {
        {
            let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            if streams.get(id).is_some_and(|s| s.open > 0) {
                return;
            }
            streams.remove(id);
        }
        if self.hub.slot_by_mcp(id).is_none() {
            return;
        }
        tracing::info!(mcp_session = %id, "SSE stream did not come back; closing the session as lost");
        self.hub.mark_end(id, SessionEnd::Lost);
        self.hub.metrics.session_lost();
        if let Err(error) = self.inner.close_session(id).await {
            tracing::warn!(mcp_session = %id, %error, "closing a lost session failed");
        }
    }
}

/// Reports the end of one GET stream when the HTTP response body is dropped.
struct StreamGuard {
    manager: Weak<TrackingSessionManager>,
    id: SessionId,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(manager) = self.manager.upgrade() {
            manager.stream_closed(&self.id);
        }
    }
}

async fn lose_after_grace(manager: Weak<TrackingSessionManager>, id: SessionId, token: CancellationToken) {
    let Some(grace) = manager.upgrade().map(|m| m.hub.config.stream_grace) else { return };
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = token.cancelled() => return,
    }
    if let Some(manager) = manager.upgrade() {
        manager.close_lost(&id).await;
    }
}

/// Pings the client while it holds a GET stream: a stream to a client that vanished
/// without closing its connection then fails to write and drops.
async fn keepalive(hub: Arc<Hub>, id: SessionId, token: CancellationToken) {
    let every = hub.config.keepalive_ping;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = token.cancelled() => return,
        }
        let Some(peer) = hub.slot_by_mcp(&id).and_then(|slot| slot.peer().cloned()) else { return };
        let ping = peer.send_request(ServerRequest::PingRequest(PingRequest::default()));
        tokio::select! {
            result = tokio::time::timeout(every, ping) => {
                if let Ok(Err(error)) = result {
                    tracing::debug!(mcp_session = %id, %error, "keep-alive ping failed");
                }
            }
            () = token.cancelled() => return,
        }
    }
}

impl SessionManager for TrackingSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        if let ClientJsonRpcMessage::Request(request) = &mut message {
            request.request.extensions_mut().insert(McpSessionId(id.clone()));
        }
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        // Runs for DELETE and again after the session's worker exits: idempotent.
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        Ok(self.track(id, stream))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // Event ids of the GET stream are plain numbers; POST streams use `<n>/<request>`.
        let standalone = !last_event_id.contains('/');
        let stream = self.inner.resume(id, last_event_id).await?;
        Ok(if standalone { self.track(id, stream).left_stream() } else { stream.right_stream() })
    }
}

/// axum middleware on `/mcp`: every request marks its session active (see
/// [`TrackingSessionManager::reap_idle`]), and a DELETE means the client ends its
/// session on purpose.
///
/// rmcp answers a successful DELETE with `202 Accepted`; the official Python SDK expects
/// `200` or `204` and logs a warning otherwise, so the answer becomes `204 No Content`.
pub async fn track_requests(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let is_delete = request.method() == http::Method::DELETE;
    if let Some(slot) = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| hub.slot_by_mcp(id))
    {
        slot.touch();
        if is_delete {
            slot.mark_end(SessionEnd::Closed);
        }
    }
    let mut response = next.run(request).await;
    if is_delete && response.status() == http::StatusCode::ACCEPTED {
        *response.status_mut() = http::StatusCode::NO_CONTENT;
    }
    response
}

/// axum middleware on `/mcp`: refuses a new session (a POST without `Mcp-Session-Id`)
/// with `503` and a JSON-RPC error while the server is at `--max-sessions` or stopping,
/// instead of the `500` rmcp would send when the handler factory declines.
pub async fn admit_new_sessions(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let opens_session =
        request.method() == http::Method::POST && !request.headers().contains_key("mcp-session-id");
    if opens_session && let Some(reason) = hub.refuses_new_sessions() {
        tracing::warn!(%reason, "refusing a new session");
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": reason}});
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            [(http::header::CONTENT_TYPE, "application/json"), (http::header::RETRY_AFTER, "5")],
            body.to_string(),
        )
            .into_response();
    }
    next.run(request).await
}
