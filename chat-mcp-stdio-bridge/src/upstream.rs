//! The server side: one Streamable HTTP session over one pooled HTTP client.
//!
//! This module knows HTTP (headers, status codes, content types) and the
//! session state (`Mcp-Session-Id`, negotiated protocol version), but not the
//! JSON-RPC flow; [`crate::bridge`] drives it. All requests share one
//! `reqwest::Client`, so connections are reused (a fresh TCP connection per
//! message roughly halves throughput).

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Response, StatusCode, Url};
use tokio::sync::watch;

use crate::cli::Config;
use crate::jsonrpc::Message;

pub const HEADER_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const HEADER_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const HEADER_LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
pub const HEADER_MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const HEADER_MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const ACCEPT_POST: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const ACCEPT_GET: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// Longest error body kept for messages; enough for a JSON-RPC error.
const ERROR_BODY_LIMIT: usize = 4096;
/// Cap on connecting (DNS + TCP); a dead host should fail fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The DELETE at shutdown must not hold the host up for long.
const DELETE_TIMEOUT: Duration = Duration::from_secs(3);

/// The session the bridge currently talks in.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// `Mcp-Session-Id` from the initialize response (`None`: stateless server).
    pub session_id: Option<HeaderValue>,
    /// Negotiated version, sent as `MCP-Protocol-Version` after initialize.
    pub protocol_version: Option<HeaderValue>,
    /// Bumped on every new session; lets concurrent failures agree on
    /// whether a renewal already happened.
    pub generation: u64,
    /// The handshake is complete (`notifications/initialized` was sent), so
    /// the GET stream may be opened.
    pub ready: bool,
}

/// What the server did with a POST.
#[derive(Debug)]
pub enum PostReply {
    /// 202/204 (or an empty 200): nothing to deliver.
    Accepted,
    /// An `application/json` body: one message or a batch.
    Json(String),
    /// A `text/event-stream` body.
    Sse(Response),
}

/// A POST's reply plus the session header it carried (for `initialize`).
#[derive(Debug)]
pub struct Posted {
    pub reply: PostReply,
    pub session_id: Option<HeaderValue>,
}

/// Transport-level failure talking to the server.
#[derive(Debug)]
pub enum UpstreamError {
    /// Could not connect or the connection broke.
    Unreachable(String),
    /// No response headers within `--timeout`.
    Timeout(Duration),
    /// 404 for a request that carried a session id: the server restarted or
    /// expired the session.
    SessionGone,
    /// 405 on GET: the server offers no server-to-client stream.
    NoStream,
    /// Any other unexpected status; `body` is a bounded excerpt.
    Status { status: StatusCode, body: String },
    /// A success status with a body that is neither JSON nor SSE.
    ContentType(String),
}

impl UpstreamError {
    /// Worth retrying later (the GET stream reconnect loop uses this).
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::Unreachable(_) | UpstreamError::Timeout(_) => true,
            UpstreamError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            _ => false,
        }
    }

    /// Short human description, without the URL.
    pub fn describe(&self) -> String {
        match self {
            UpstreamError::Unreachable(cause) => format!("cannot reach the server: {cause}"),
            UpstreamError::Timeout(d) => {
                format!("no response within {}s (see --timeout)", d.as_secs())
            }
            UpstreamError::SessionGone => "the server no longer knows this session (HTTP 404)".into(),
            UpstreamError::NoStream => "the server does not offer a GET stream (HTTP 405)".into(),
            UpstreamError::Status { status, body } => {
                let hint = match *status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (check --auth-token / --header)",
                    StatusCode::NOT_FOUND => " (check --url)",
                    _ => "",
                };
                if body.trim().is_empty() {
                    format!("HTTP {status}{hint}")
                } else {
                    format!("HTTP {status}{hint}: {}", body.trim())
                }
            }
            UpstreamError::ContentType(ct) => format!("unexpected content type {ct:?}"),
        }
    }
}

/// Formats an error with its whole `source()` chain; reqwest's top-level
/// message alone ("error sending request") hides "Connection refused".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The replay material for re-initializing after a 404.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub initialize: Message,
    pub initialized: Option<Message>,
}

/// HTTP access to the MCP endpoint plus the current session.
#[derive(Debug)]
pub struct Upstream {
    client: Client,
    url: Url,
    headers: HeaderMap,
    timeout: Option<Duration>,
    state: watch::Sender<SessionState>,
    handshake: Mutex<Option<Handshake>>,
    /// Serializes session renewals (see [`crate::bridge`]).
    pub renew_lock: tokio::sync::Mutex<()>,
}

impl Upstream {
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let connect = config.timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT));
        let client = Client::builder()
            .user_agent(concat!("chat-mcp-stdio-bridge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect)
            // Detects a dead peer on a quiet GET stream without reconnecting
            // needlessly (rmcp turns a second GET into a mute "shadow").
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .tls_certs_merge(config.ca_certs.iter().cloned())
            .build()?;
        Ok(Upstream {
            client,
            url: config.url.clone(),
            headers: config.headers.clone(),
            timeout: config.timeout,
            state: watch::Sender::new(SessionState::default()),
            handshake: Mutex::new(None),
            renew_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Snapshot of the current session.
    pub fn current(&self) -> SessionState {
        self.state.borrow().clone()
    }

    /// Watch session changes (the GET stream restarts on a new generation).
    pub fn subscribe(&self) -> watch::Receiver<SessionState> {
        self.state.subscribe()
    }

    pub fn handshake(&self) -> Option<Handshake> {
        self.handshake.lock().ok().and_then(|h| h.clone())
    }

    /// Starts a new session after a successful `initialize`.
    /// `ready` is false for the host's own handshake (the host still has to
    /// send `notifications/initialized`) and true after a renewal.
    pub fn install_session(
        &self,
        session_id: Option<HeaderValue>,
        protocol_version: Option<&str>,
        initialize: Option<Message>,
        ready: bool,
    ) -> SessionState {
        if let Some(initialize) = initialize
            && let Ok(mut h) = self.handshake.lock()
        {
            *h = Some(Handshake { initialize, initialized: None });
        }
        let protocol_version = protocol_version.and_then(|v| HeaderValue::from_str(v).ok());
        let mut installed = SessionState::default();
        self.state.send_modify(|s| {
            s.session_id = session_id;
            s.protocol_version = protocol_version;
            s.generation += 1;
            s.ready = ready;
            installed = s.clone();
        });
        installed
    }

    /// Marks the handshake complete and keeps the host's
    /// `notifications/initialized` for replay.
    pub fn mark_ready(&self, initialized: Message) {
        if let Ok(mut h) = self.handshake.lock()
            && let Some(h) = h.as_mut()
        {
            h.initialized = Some(initialized);
        }
        // Without a session from `initialize` there is nothing to listen to.
        self.state.send_if_modified(|s| {
            if s.generation == 0 {
                return false;
            }
            let changed = !s.ready;
            s.ready = true;
            changed
        });
    }

    fn session_headers(
        &self,
        builder: reqwest::RequestBuilder,
        session: &SessionState,
    ) -> reqwest::RequestBuilder {
        let mut builder = builder.headers(self.headers.clone());
        if let Some(id) = &session.session_id {
            builder = builder.header(HEADER_SESSION_ID, id.clone());
        }
        if let Some(v) = &session.protocol_version {
            builder = builder.header(HEADER_PROTOCOL_VERSION, v.clone());
        }
        builder
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Response, UpstreamError> {
        let send = builder.send();
        let result = match self.timeout {
            Some(limit) => {
                tokio::time::timeout(limit, send).await.map_err(|_| UpstreamError::Timeout(limit))?
            }
            None => send.await,
        };
        result.map_err(|e| {
            if e.is_timeout() {
                UpstreamError::Timeout(self.timeout.unwrap_or(CONNECT_TIMEOUT))
            } else {
                // reqwest's own top-level text only repeats the URL.
                let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), error_chain);
                UpstreamError::Unreachable(cause)
            }
        })
    }

    async fn read_text(&self, resp: Response, limit: Option<usize>) -> Result<String, UpstreamError> {
        let read = async {
            let bytes = resp.bytes().await;
            bytes.map_err(|e| UpstreamError::Unreachable(error_chain(&e)))
        };
        let bytes = match self.timeout {
            Some(t) => tokio::time::timeout(t, read).await.map_err(|_| UpstreamError::Timeout(t))??,
            None => read.await?,
        };
        let bytes = match limit {
            Some(n) if bytes.len() > n => bytes.slice(..n),
            _ => bytes,
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn status_error(&self, resp: Response) -> UpstreamError {
        let status = resp.status();
        let body = self.read_text(resp, Some(ERROR_BODY_LIMIT)).await.unwrap_or_default();
        UpstreamError::Status { status, body }
    }

    /// POSTs one message (or batch) verbatim; the message is never changed. `session = None` sends it
    /// outside any session (for `initialize`).
    pub async fn post(&self, msg: &Message, session: Option<&SessionState>) -> Result<Posted, UpstreamError> {
        let mut builder = self
            .client
            .post(self.url.clone())
            .header(ACCEPT, ACCEPT_POST)
            .header(CONTENT_TYPE, JSON)
            .body(msg.raw().to_string());
        let attached = session.is_some_and(|s| s.session_id.is_some());
        builder = match session {
            Some(s) => self.session_headers(builder, s),
            None => builder.headers(self.headers.clone()),
        };
        if !attached {
            builder = sessionless_headers(builder, msg);
        }
        let resp = self.send(builder).await?;
        let status = resp.status();
        let session_id = resp.headers().get(HEADER_SESSION_ID).cloned();
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(Posted { reply: PostReply::Accepted, session_id });
        }
        if status == StatusCode::NOT_FOUND && attached {
            return Err(UpstreamError::SessionGone);
        }
        if !status.is_success() {
            return Err(self.status_error(resp).await);
        }
        let content_type = content_type(&resp);
        let reply = if content_type.starts_with("text/event-stream") {
            PostReply::Sse(resp)
        } else {
            let is_json = content_type.starts_with("application/json");
            let body = self.read_text(resp, None).await?;
            if body.trim().is_empty() {
                PostReply::Accepted
            } else if is_json || content_type.is_empty() {
                PostReply::Json(body)
            } else {
                return Err(UpstreamError::ContentType(content_type));
            }
        };
        Ok(Posted { reply, session_id })
    }

    /// Opens (or, with `last_event_id`, resumes) an SSE stream with GET.
    pub async fn get(
        &self,
        session: &SessionState,
        last_event_id: Option<&str>,
    ) -> Result<Response, UpstreamError> {
        let mut builder = self.client.get(self.url.clone()).header(ACCEPT, ACCEPT_GET);
        builder = self.session_headers(builder, session);
        if let Some(id) = last_event_id {
            builder = builder.header(HEADER_LAST_EVENT_ID, id);
        }
        let resp = self.send(builder).await?;
        let status = resp.status();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            return Err(UpstreamError::NoStream);
        }
        if status == StatusCode::NOT_FOUND && session.session_id.is_some() {
            return Err(UpstreamError::SessionGone);
        }
        if !status.is_success() {
            return Err(self.status_error(resp).await);
        }
        let ct = content_type(&resp);
        if !ct.starts_with("text/event-stream") {
            return Err(UpstreamError::ContentType(ct));
        }
        Ok(resp)
    }

    /// Ends the session with DELETE so the server frees it at once (instead
    /// of after its idle timeout). Best effort and bounded.
    pub async fn delete(&self) {
        let session = self.current();
        let Some(id) = session.session_id.clone() else {
            return;
        };
        let builder = self.session_headers(self.client.delete(self.url.clone()), &session);
        match tokio::time::timeout(DELETE_TIMEOUT, builder.send()).await {
            Ok(Ok(resp)) => {
                tracing::debug!(status = %resp.status(), session = ?id, "session deleted");
            }
            Ok(Err(e)) => tracing::debug!("DELETE failed: {}", error_chain(&e)),
            Err(_) => tracing::debug!("DELETE timed out"),
        }
    }
}

fn content_type(resp: &Response) -> String {
    resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_ascii_lowercase()
}

/// The HTTP headers a request of the session-less revision (2026-07-28) needs, from the
/// message itself: `MCP-Protocol-Version` (its `_meta` version), `Mcp-Method` and
/// `Mcp-Name`. Messages of the handshake revisions carry no version of their own and get
/// nothing here. A value that cannot be a header is left out (the server then says
/// what is missing).
fn sessionless_headers(mut builder: reqwest::RequestBuilder, msg: &Message) -> reqwest::RequestBuilder {
    let Some(version) = msg.request_protocol_version() else { return builder };
    let header = |value: &str| HeaderValue::from_str(value).ok();
    if let Some(version) = header(version) {
        builder = builder.header(HEADER_PROTOCOL_VERSION, version);
    }
    if let Some(method) = msg.method().and_then(header) {
        builder = builder.header(HEADER_MCP_METHOD, method);
    }
    if let Some(name) = msg.mcp_name().and_then(header) {
        builder = builder.header(HEADER_MCP_NAME, name);
    }
    builder
}
