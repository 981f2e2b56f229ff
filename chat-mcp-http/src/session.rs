//! The session half of MCP Streamable HTTP: `initialize`, the GET (SSE) stream, DELETE,
//! client notifications, and knowing when a session is over.
//!
//! rmcp's own session manager keeps a worker task, a service task and five channels per
//! session. Measured, that was about 60 KiB of the server's ~85 KiB per idle session and
//! most of the CPU per relayed message (see `docs/PERFORMANCE.md`). So this module owns
//! sessions: a session is a [`Slot`] in the hub, its stream is the slot's
//! [`Outlet`](crate::state::outlet::Outlet). rmcp runs statelessly behind it and still does
//! all JSON-RPC request handling it is given: every request except `initialize` and the
//! tool calls that never wait (see `direct.rs`), with the session found from its
//! `Mcp-Session-Id` (see [`Gateway`](crate::handler::Gateway)).
//!
//! What this layer answers itself, as rmcp's session mode did:
//! - `initialize` without a session: a new session, its id in `Mcp-Session-Id`.
//! - Requests of the session-less revision (2026-07-28: a protocol version in the
//!   request's `_meta`, or `server/discover`, or an `MCP-Protocol-Version` of no handshake
//!   revision) without `Mcp-Session-Id`: handed to rmcp, which serves them statelessly
//!   (see `era.rs`).
//! - Requests for an unknown session: `404`, so clients start a new one. Without the
//!   header (and not session-less): `400`. A session is unknown only once it is really over (see below): a
//!   client whose connection broke is served again with the same `Mcp-Session-Id`.
//! - Client notifications and responses (answers to keep-alive pings): `202`.
//!   `notifications/cancelled` stops the named blocking request.
//! - `GET`: the session's SSE stream. It opens with a priming event (an id, no data, and
//!   `retry:`). An event's id is its `seq` (see `state/outlet.rs`), so ids mean the same
//!   after a restart; a client that reconnects with `Last-Event-ID` gets the messages it
//!   missed (the last `--stream-replay`, and after a restart the events from the core). A new stream
//!   replaces the old; one without `Last-Event-ID` gets what no stream has taken, plus
//!   what a stream that just broke was handed in its last `--redeliver-window`.
//! - `DELETE`: the client ends the session on purpose (`204`); its partner hears `left`.
//!
//! Whether the client is still there is the core's decision: this layer reports each
//! GET stream and each blocking request as a hold (`Chat::hold` / `Chat::release`), and
//! every request as activity. A session silent past its window is *lost* (the partner is
//! told `partner.reconnecting`) but still served; it ends (and gets `404`) only when the
//! core expires it after the reconnect grace. Keep-alive pings (`--keepalive-ping`) make
//! a stream to a vanished client fail to write, so it drops. At shutdown every session
//! ends; the core has already told partners `shutdown`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chat_core::{Hold, SessionEnd};
use futures::{Stream, StreamExt};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, ErrorData, GetMeta, JsonRpcRequest,
    ProtocolVersion, ServerJsonRpcMessage, ServerResult,
};

use crate::direct::Direct;
use crate::edge::ConnectionCloser;
use crate::handler::{self, SUPPORTED_VERSIONS};
use crate::state::hub::Hub;
use crate::state::notify;
use crate::state::outlet::{Frame, display_id, parse_id};
use crate::state::slot::{PingVerdict, Slot};

/// Why a request's session cannot be served: a status and a plain-text reason.
struct Refused(StatusCode, Cow<'static, str>);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::METHOD_NOT_ALLOWED {
            return (self.0, [(http::header::ALLOW, "POST")], self.1.into_owned()).into_response();
        }
        (self.0, self.1.into_owned()).into_response()
    }
}

/// The session layer in front of rmcp.
pub struct Sessions {
    hub: Arc<Hub>,
    direct: Direct,
}

impl Sessions {
    /// The layer for `hub`, answering eligible tool calls with `direct`.
    pub fn new(hub: Arc<Hub>, direct: Direct) -> Arc<Self> {
        Arc::new(Sessions { hub, direct })
    }

    /// The server's counters.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.hub.metrics
    }

    /// The session a request names: `400` without `Mcp-Session-Id`, `400` for an
    /// `MCP-Protocol-Version` this server does not speak, `404` for an unknown session.
    fn lookup(&self, headers: &HeaderMap) -> Result<Arc<Slot>, Refused> {
        let sessionless = headers
            .get("mcp-protocol-version")
            .is_some_and(|v| v.as_bytes() == ProtocolVersion::V_2026_07_28.as_str().as_bytes());
        if sessionless && !headers.contains_key("mcp-session-id") {
            // GET and DELETE have no place in the session-less revision (no standalone
            // stream, no session to end); its server answers them 405.
            let text = "Method Not Allowed: protocol 2026-07-28 has no sessions: POST requests; \
                        subscriptions/listen replaces the GET stream";
            return Err(Refused(StatusCode::METHOD_NOT_ALLOWED, text.into()));
        }
        if let Some(version) = headers.get("mcp-protocol-version") {
            let known = version.to_str().is_ok_and(|v| SUPPORTED_VERSIONS.iter().any(|s| s.as_str() == v));
            if !known {
                let text = format!(
                    "Bad Request: Unsupported MCP-Protocol-Version: {}",
                    String::from_utf8_lossy(version.as_bytes())
                );
                return Err(Refused(StatusCode::BAD_REQUEST, text.into()));
            }
        }
        let Some(id) = headers.get("mcp-session-id") else {
            return Err(Refused(StatusCode::BAD_REQUEST, "Bad Request: Session ID is required".into()));
        };
        match id.to_str().ok().and_then(|id| self.hub.slot_by_mcp(id)) {
            Some(slot) => Ok(slot),
            None => Err(Refused(StatusCode::NOT_FOUND, "Not Found: Session not found".into())),
        }
    }

    /// The session a request names, as [`Sessions::lookup`] finds it, or the response
    /// that refuses the request.
    pub(crate) fn session_for(&self, headers: &HeaderMap) -> Result<Arc<Slot>, Box<Response>> {
        self.lookup(headers).map_err(|refused| Box::new(refused.into_response()))
    }

    /// Answers a POST whose JSON body is `body`, or `None` to hand it to rmcp (requests
    /// other than `initialize` and direct tool calls, and bodies that are not JSON-RPC).
    pub async fn post(&self, parts: &Parts, body: &Bytes) -> Option<Response> {
        if !accepts(&parts.headers, "application/json") || !accepts(&parts.headers, "text/event-stream") {
            return None; // rmcp answers 406.
        }
        let message: ClientJsonRpcMessage = serde_json::from_slice(body).ok()?;
        if !parts.headers.contains_key("mcp-session-id") {
            return match message {
                ClientJsonRpcMessage::Request(request)
                    if matches!(request.request, ClientRequest::InitializeRequest(_)) =>
                {
                    Some(self.initialize(&parts.headers, peer_address(&parts.extensions), request).await)
                }
                // The session-less revision: rmcp serves it, per request.
                message if is_sessionless(&parts.headers, &message) => None,
                _ => Some((StatusCode::BAD_REQUEST, "Bad Request: Session ID is required").into_response()),
            };
        }
        let slot = match self.lookup(&parts.headers) {
            Ok(slot) => slot,
            Err(refused) => return Some(refused.into_response()),
        };
        match message {
            ClientJsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) = &notification.notification
                    && let Some(id) = &cancelled.params.request_id
                {
                    slot.cancel_request(&id.to_string());
                }
                Some(StatusCode::ACCEPTED.into_response())
            }
            ClientJsonRpcMessage::Response(response) => {
                slot.ping_answered(&response.id.to_string());
                Some(StatusCode::ACCEPTED.into_response())
            }
            ClientJsonRpcMessage::Error(error) => {
                // An error answer to a ping (a client that does not implement it) still
                // shows the client is there.
                if let Some(id) = &error.id {
                    slot.ping_answered(&id.to_string());
                }
                Some(StatusCode::ACCEPTED.into_response())
            }
            ClientJsonRpcMessage::Request(request) => {
                // Tool calls count as activity through the command they run; any other
                // request (ping, listings, resources) is a sign of life too.
                if !matches!(request.request, ClientRequest::CallToolRequest(_)) {
                    self.hub.touch(&slot);
                }
                self.direct.answer(slot, request).await
            }
        }
    }

    /// `initialize`: opens a session for the client at `address` and answers with its id
    /// in `Mcp-Session-Id`.
    async fn initialize(
        &self,
        headers: &HeaderMap,
        address: Option<IpAddr>,
        request: JsonRpcRequest<ClientRequest>,
    ) -> Response {
        let ClientRequest::InitializeRequest(init) = request.request else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let id = request.id;
        if let Some(version) = headers.get("mcp-protocol-version")
            && version.as_bytes() != init.params.protocol_version.as_str().as_bytes()
        {
            let error = ErrorData::invalid_request(
                "the MCP-Protocol-Version header does not match params.protocolVersion",
                None,
            );
            return json_response(StatusCode::BAD_REQUEST, &ServerJsonRpcMessage::error(error, Some(id)));
        }
        let result = match handler::initialize_result(&init.params) {
            Ok(result) => result,
            Err(error) => {
                return json_response(StatusCode::OK, &ServerJsonRpcMessage::error(error, Some(id)));
            }
        };
        let slot = match self.hub.open_session(address, &result.protocol_version).await {
            Ok(slot) => slot,
            Err(refused) => {
                tracing::warn!(reason = %refused, "refusing a new session");
                let error = ErrorData::new(rmcp::model::ErrorCode(-32000), refused.to_string(), None);
                let mut response = json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &ServerJsonRpcMessage::error(error, Some(id)),
                );
                response.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("5"));
                return response;
            }
        };
        tracing::info!(
            session = %slot.id,
            mcp_session = %slot.mcp_id,
            client = %init.params.client_info.name,
            client_version = %init.params.client_info.version,
            protocol = %init.params.protocol_version,
            "session initialized"
        );
        let message = ServerJsonRpcMessage::response(ServerResult::InitializeResult(result), id);
        let mut response = json_response(StatusCode::OK, &message);
        if let Ok(value) = http::HeaderValue::from_str(&slot.mcp_id) {
            response.headers_mut().insert("mcp-session-id", value);
        }
        response
    }

    /// `GET`: the session's SSE stream, opened by a priming event. `connection` closes
    /// the TCP connection it runs on (see [`keepalive`]).
    fn get(self: &Arc<Self>, headers: &HeaderMap, connection: Option<ConnectionCloser>) -> Response {
        if !accepts(headers, "text/event-stream") {
            let text = "Not Acceptable: Client must accept text/event-stream";
            return (StatusCode::NOT_ACCEPTABLE, text).into_response();
        }
        let slot = match self.lookup(headers) {
            Ok(slot) => slot,
            Err(refused) => return refused.into_response(),
        };
        let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
        if last.is_some_and(|id| id.starts_with("post-")) {
            // A client resuming a broken response stream: its result cannot be sent again
            // (events stay in the inbox, a reply in the mailbox). End at once, and leave
            // the session's GET stream alone.
            let nothing = futures::stream::empty::<Result<SseEvent, Infallible>>();
            return Sse::new(nothing).into_response();
        }
        let after = last.and_then(parse_id);
        // Resuming from before this process took the session over (a restart): the
        // events it never carried come from the core's inbox.
        let earlier = match after {
            Some(after) if after < slot.outlet.floor() => self.hub.events_after(slot.id, after),
            _ => Vec::new(),
        };
        let Some(opened) = slot.outlet.open_with(after, earlier) else {
            return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        };
        // Opened first, then held: events the core pushes again to a session that comes
        // back go into this stream.
        slot.stream_opened();
        slot.stream_on(opened.generation, connection);
        self.hub.hold(&slot, Hold::Stream);
        self.hub.metrics.get_stream(1);
        let config = &self.hub.config;
        let primed = primes(&slot);
        let body = StreamBody {
            frames: opened.frames,
            recent: VecDeque::new(),
            window: config.redeliver_window,
            generation: opened.generation,
            hub: self.hub.clone(),
            slot,
        };
        let response = sse(body.map(Ok::<_, Infallible>), config.sse_keep_alive);
        if primed { self::primed(response, &display_id(opened.position), config.sse_retry) } else { response }
    }

    /// `DELETE`: the client ends its session.
    async fn delete(&self, headers: &HeaderMap) -> Response {
        match self.lookup(headers) {
            Ok(slot) => {
                self.hub.end_session(&slot, SessionEnd::Closed).await;
                StatusCode::NO_CONTENT.into_response()
            }
            Err(refused) => refused.into_response(),
        }
    }
}

/// Whether a message without `Mcp-Session-Id` belongs to the session-less revision
/// (2026-07-28): a request that carries its protocol version in `_meta` or is
/// `server/discover`, or any message whose `MCP-Protocol-Version` header names no
/// handshake revision this server speaks (rmcp then answers it as the spec asks, an
/// unknown version included).
fn is_sessionless(headers: &HeaderMap, message: &ClientJsonRpcMessage) -> bool {
    if let ClientJsonRpcMessage::Request(request) = message
        && (request.request.get_meta().protocol_version().is_some()
            || matches!(request.request, ClientRequest::DiscoverRequest(_)))
    {
        return true;
    }
    names_no_handshake_version(headers)
}

/// Whether the `MCP-Protocol-Version` header names a version that is not one of the
/// handshake revisions this server speaks (so the request is not of a session).
fn names_no_handshake_version(headers: &HeaderMap) -> bool {
    headers.get("mcp-protocol-version").is_some_and(|version| {
        !version.to_str().is_ok_and(|v| SUPPORTED_VERSIONS.iter().any(|s| s.as_str() == v))
    })
}

/// The first revision whose SSE streams start with a priming event. Older clients may not
/// parse an event with empty data (early TypeScript SDKs fail on it), so they get none.
const PRIMING_SINCE: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// Whether `slot`'s SSE streams start with a priming event.
pub(crate) fn primes(slot: &Slot) -> bool {
    slot.protocol_version().is_some_and(|version| *version >= PRIMING_SINCE)
}

/// `response` (an SSE stream) with a priming event first: `id`, `retry:` and empty data,
/// so a client can resume from the very start. axum writes no `data` field for empty
/// data, and the priming event needs one, so it is framed here.
pub(crate) fn primed(response: Response, id: &str, retry: Duration) -> Response {
    let priming = format!("id: {id}\nretry: {}\ndata:\n\n", retry.as_millis());
    let (parts, body) = response.into_parts();
    let body =
        futures::stream::once(std::future::ready(Ok(Bytes::from(priming)))).chain(body.into_data_stream());
    Response::from_parts(parts, axum::body::Body::from_stream(body))
}

fn sse(
    events: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
    keep_alive: Duration,
) -> Response {
    Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive)).into_response()
}

fn sse_event(frame: &Frame) -> SseEvent {
    SseEvent::default().id(display_id(frame.id)).data(&*frame.json)
}

fn json_response(status: StatusCode, message: &ServerJsonRpcMessage) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Whether the `Accept` header names `media` (or `*/*`).
pub(crate) fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let essence = item.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case(media) || essence == "*/*"
        },
    )
}

/// The methods `/mcp` serves, for the `Allow` header of a `405`.
const ALLOWED_METHODS: &str = "GET, POST, DELETE";

/// axum middleware on `/mcp` for GET and DELETE (POSTs go through
/// [`crate::jsonrpc::validate_post`], which calls [`Sessions::post`]). Other methods get
/// `405` with the methods this layer serves (rmcp, being stateless, would list only POST).
pub async fn serve_streams(State(sessions): State<Arc<Sessions>>, request: Request, next: Next) -> Response {
    match *request.method() {
        Method::GET => {
            sessions.get(request.headers(), request.extensions().get::<ConnectionCloser>().cloned())
        }
        Method::DELETE => sessions.delete(request.headers()).await,
        Method::POST => next.run(request).await,
        _ => (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, ALLOWED_METHODS)], "Method Not Allowed")
            .into_response(),
    }
}

/// A GET stream's body: the session's frames, and, when it is dropped (the connection
/// broke or a newer stream replaced it), the report of its end to the core and to the
/// outlet, with the messages it may not have delivered.
struct StreamBody {
    frames: tokio::sync::mpsc::Receiver<Frame>,
    /// Replayable frames written in the last `window`, oldest first.
    recent: VecDeque<(u64, tokio::time::Instant)>,
    window: Duration,
    generation: u64,
    hub: Arc<Hub>,
    slot: Arc<Slot>,
}

impl Stream for StreamBody {
    type Item = SseEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<SseEvent>> {
        let Poll::Ready(frame) = self.frames.poll_recv(cx) else { return Poll::Pending };
        let Some(frame) = frame else { return Poll::Ready(None) };
        if frame.replay {
            let now = tokio::time::Instant::now();
            let window = self.window;
            while self.recent.front().is_some_and(|(_, at)| now.duration_since(*at) > window) {
                self.recent.pop_front();
            }
            self.recent.push_back((frame.id, now));
        }
        self.slot.frame_taken();
        Poll::Ready(Some(sse_event(&frame)))
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        self.hub.metrics.get_stream(-1);
        self.slot.stream_closed();
        self.slot.stream_off(self.generation);
        if self.slot.ending().is_cancelled() {
            return;
        }
        // What may not have reached the client: frames written within the window, and
        // frames never written at all.
        let now = tokio::time::Instant::now();
        let written =
            self.recent.iter().find(|(_, at)| now.duration_since(*at) <= self.window).map(|(id, _)| *id);
        let unwritten = std::iter::from_fn(|| self.frames.try_recv().ok()).find(|f| f.replay).map(|f| f.id);
        if let Some(from) = written.or(unwritten) {
            self.slot.outlet.rewind(self.generation, from);
        }
        tracing::debug!(mcp_session = %self.slot.mcp_id, "SSE stream dropped");
        self.hub.release(&self.slot, Hold::Stream);
    }
}

/// Sends a `ping` on every open GET stream every `--keepalive-ping`, until shutdown, and
/// ends the streams of clients that stopped answering them.
///
/// - A stream to a client that vanished without closing its connection fails to write a
///   ping and drops.
/// - A client that is stopped (SIGSTOP) or hung keeps its connection up, and the kernel
///   takes the pings into its buffers, so writes do not fail. Such a client is noticed by
///   its silence: `--ping-timeout` after a ping, one that is still unanswered has its
///   stream's connection dropped, which ends the stream as a broken one (the core then
///   applies the stream grace and the reconnect grace as usual). This applies only to a
///   client that has answered a ping before (many never do; they are judged by writes
///   alone), and not while its stream is draining a backlog (see `Slot::judge_pings`).
pub async fn keepalive(hub: Arc<Hub>) {
    let every = hub.config.keepalive_ping;
    let timeout = hub.config.ping_timeout;
    let mut n = 0u64;
    let mut next_ping = tokio::time::Instant::now() + every;
    // When the pings sent last are due to be answered.
    let mut check: Option<tokio::time::Instant> = None;
    loop {
        let wake = check.map_or(next_ping, |at| at.min(next_ping));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = hub.shutdown_token().cancelled() => return,
        }
        let now = tokio::time::Instant::now();
        if check.is_some_and(|at| now >= at) {
            check = None;
            for slot in hub.sessions().into_iter().filter(|slot| slot.is_listening()) {
                match slot.judge_pings(now, timeout) {
                    // A ping sent after the last round's may fall due later.
                    PingVerdict::Fine => {
                        if let Some(due) = slot.ping_due(timeout) {
                            check = Some(check.map_or(due, |at| at.min(due)));
                        }
                    }
                    PingVerdict::Draining => {
                        let again = now + timeout;
                        check = Some(check.map_or(again, |at| at.min(again)));
                    }
                    PingVerdict::Unresponsive => {
                        if slot.drop_stream_connection() {
                            hub.metrics.count_rejected("ping_timeout");
                            tracing::info!(
                                session = %slot.id,
                                mcp_session = %slot.mcp_id,
                                "ping unanswered for {timeout:?}: dropping the session's GET stream"
                            );
                        }
                    }
                }
            }
        }
        if now >= next_ping {
            next_ping = now + every;
            for slot in hub.sessions().into_iter().filter(|slot| slot.is_listening()) {
                n += 1;
                if let Some(ping) = notify::ping(n)
                    && slot.outlet.send_once(ping).is_ok()
                {
                    slot.ping_sent(n, now);
                    check.get_or_insert(now + timeout);
                }
            }
        }
    }
}

/// The client's IP address, as the accept loop recorded it (see `edge.rs`).
pub(crate) fn peer_address(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

/// axum middleware on `/mcp`: refuses a new session (a POST without `Mcp-Session-Id`)
/// with `503` and a JSON-RPC error while the server is at `--max-sessions`, the client's
/// address at `--max-sessions-per-address`, or the server is stopping. A request of the
/// session-less revision (by its `MCP-Protocol-Version` header) opens none by itself: the
/// binding call that does is refused by the hub instead (a JSON-RPC error).
pub async fn admit_new_sessions(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let opens_session = request.method() == http::Method::POST
        && !names_no_handshake_version(request.headers())
        && !request.headers().contains_key("mcp-session-id");
    if opens_session && let Some(reason) = hub.refuses_new_sessions(peer_address(request.extensions())) {
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
