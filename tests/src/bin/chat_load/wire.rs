//! The client half of MCP Streamable HTTP (protocol 2025-11-25 with sessions, or the
//! session-less 2026-07-28 with `--sessionless`), spoken directly.
//!
//! A full MCP client would add per-request work (typed message enums, a service loop, an
//! extra task per session) that the generator would pay for on the same two cores as the
//! server. Here a request is one POST on a pooled connection ([`crate::http`]), its SSE
//! body is parsed by `sse-stream`, and requests are serialized from small structs rather
//! than built as JSON trees.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sse_stream::{Sse, SseStream};

use crate::error::{Error, Result};
use crate::http::{self, Kind, Lease, Releasing};

/// The protocol revision the generator pins (the newest with sessions).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The session-less revision (`--sessionless`).
pub const SESSIONLESS_VERSION: &str = "2026-07-28";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const POST_ACCEPT: &str = "application/json, text/event-stream";
/// Bound on any single request that should answer at once.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed SSE stream from a response body.
pub type SseEvents = Pin<Box<dyn Stream<Item = std::result::Result<Sse, sse_stream::Error>> + Send>>;

/// The server's MCP endpoint with one shared connection pool.
#[derive(Clone)]
pub struct Endpoint {
    http: http::Client,
    url: Arc<str>,
    /// The request target (`/mcp`), parsed once.
    path: Uri,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
    /// Speak 2026-07-28: no `initialize`, the caller named by `handle`.
    sessionless: bool,
}

/// What a `tools/call` returned.
#[derive(Debug)]
pub struct ToolResult {
    /// `result.isError`.
    pub is_error: bool,
    /// `result.structuredContent` (or null).
    pub data: Value,
}

impl ToolResult {
    /// A short description of a refusal, for error samples.
    pub fn error_text(&self) -> String {
        match (
            self.data.get("error").and_then(Value::as_str),
            self.data.get("message").and_then(Value::as_str),
        ) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => self.data.to_string(),
        }
    }
}

/// A JSON-RPC request.
#[derive(Serialize)]
struct RpcRequest<'a, P> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: P,
}

/// The params of `tools/call`.
#[derive(Serialize)]
struct ToolParams<'a, A> {
    name: &'a str,
    arguments: A,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    meta: Option<RequestMeta>,
}

/// A tool call's arguments plus the caller's `handle` (session-less).
#[derive(Serialize)]
struct WithHandle<'a, A> {
    #[serde(flatten)]
    arguments: A,
    #[serde(skip_serializing_if = "Option::is_none")]
    handle: Option<&'a str>,
}

/// The `_meta` every session-less request carries.
#[derive(Serialize)]
struct RequestMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    version: &'static str,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    capabilities: Empty,
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    client_info: ClientName,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct ClientName {
    name: &'static str,
    version: &'static str,
}

impl RequestMeta {
    fn new() -> RequestMeta {
        RequestMeta {
            version: SESSIONLESS_VERSION,
            capabilities: Empty {},
            client_info: ClientName { name: "chat-load", version: env!("CARGO_PKG_VERSION") },
        }
    }
}

/// A JSON-RPC response with a typed result.
#[derive(Deserialize)]
struct Reply<R> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default = "Option::default")]
    result: Option<R>,
    #[serde(default)]
    error: Option<Value>,
}

/// The part of a `CallToolResult` the generator reads, with `structuredContent`
/// decoded straight into `T` (the markdown `content` is skipped unparsed).
#[derive(Deserialize)]
struct CallResult<T> {
    #[serde(rename = "isError", default)]
    is_error: bool,
    #[serde(rename = "structuredContent", default = "Option::default")]
    structured_content: Option<T>,
}

/// A tool refusal's `structuredContent` (`{error, message}`); what hot paths decode
/// instead of a whole JSON tree.
#[derive(Debug, Default, Deserialize)]
pub struct Refusal {
    /// The error code.
    #[serde(default)]
    pub error: Option<String>,
    /// The actionable message.
    #[serde(default)]
    pub message: Option<String>,
}

impl Refusal {
    /// `code: message`, for error samples.
    pub fn text(&self) -> String {
        format!(
            "{}: {}",
            self.error.as_deref().unwrap_or("error"),
            self.message.as_deref().unwrap_or("(no message)")
        )
    }
}

impl Endpoint {
    /// A client for `url` (`http://host:port/path` on a loopback address; the host is
    /// resolved once) with at most `max_requests` requests in flight.
    pub async fn new(url: &str, token: Option<&str>, max_requests: usize) -> Result<Endpoint> {
        let bad = |why: &str| Error::new(format!("bad URL {url}: {why}"));
        let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only plain http:// is supported (the generator is for loopback runs)"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await?
            .next()
            .ok_or_else(|| bad("the host resolves to no address"))?;
        if !addr.ip().is_loopback() {
            return Err(bad("not a loopback address; chat-load only loads servers on this machine"));
        }
        let path: Uri =
            uri.path_and_query().map_or("/", |p| p.as_str()).parse().map_err(|_| bad("bad path"))?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
        let authorization = match token {
            Some(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| Error::new("the auth token is not a valid header value"))?,
            ),
            None => None,
        };
        Ok(Endpoint {
            http: http::Client::new(addr, max_requests),
            url: url.into(),
            path,
            host,
            authorization,
            sessionless: false,
        })
    }

    /// The same endpoint, spoken to in the session-less revision (2026-07-28).
    pub fn sessionless(mut self) -> Endpoint {
        self.sessionless = true;
        self
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn request(
        &self,
        method: Method,
        session: Option<&HeaderValue>,
        accept: &'static str,
        body: Bytes,
    ) -> Request<http::Body> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        if let Some(session) = session {
            headers.insert(SESSION_HEADER, session.clone());
            headers.insert(VERSION_HEADER, HeaderValue::from_static(PROTOCOL_VERSION));
        }
        request
    }

    fn post(&self, session: Option<&HeaderValue>, body: String) -> Request<http::Body> {
        let mut request = self.request(Method::POST, session, POST_ACCEPT, Bytes::from(body));
        request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    /// Opens a session: `initialize`, then `notifications/initialized`. Session-less,
    /// nothing is sent: the first binding call opens the identity and returns its handle.
    pub async fn open(&self) -> Result<Session> {
        if self.sessionless {
            return Ok(Session(Arc::new(Inner {
                endpoint: self.clone(),
                id: None,
                handle: std::sync::OnceLock::new(),
                next_id: AtomicU64::new(1),
            })));
        }
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "chat-load", "version": env!("CARGO_PKG_VERSION")}
        });
        let body =
            serde_json::to_string(&RpcRequest { jsonrpc: "2.0", id: 1, method: "initialize", params })?;
        let exchange = async {
            let (response, lease) = self.http.send(self.post(None, body), Kind::Request).await?;
            let response = expect_success(response, "initialize").await?;
            let id = response
                .headers()
                .get(SESSION_HEADER)
                .cloned()
                .ok_or_else(|| Error::new("initialize: no mcp-session-id header"))?;
            // The result (capabilities, instructions) is not needed: skip it unparsed.
            let reply: Reply<serde::de::IgnoredAny> = read_reply(response, lease, 1).await?;
            if let Some(error) = reply.error {
                return Err(Error::new(format!("initialize refused: {error}")));
            }
            Ok(id)
        };
        let id = within(REQUEST_TIMEOUT, "initialize", exchange).await?;
        let session = Session(Arc::new(Inner {
            endpoint: self.clone(),
            id: Some(id),
            handle: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(2),
        }));
        session.send_message(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
        Ok(session)
    }
}

/// One MCP session; cheap to clone (all clones are the same session).
#[derive(Clone)]
pub struct Session(Arc<Inner>);

struct Inner {
    endpoint: Endpoint,
    /// The `Mcp-Session-Id`, kept as a header value so it is validated once; `None`
    /// session-less.
    id: Option<HeaderValue>,
    /// Session-less: the handle the first binding call returned.
    handle: std::sync::OnceLock<Box<str>>,
    next_id: AtomicU64,
}

impl Session {
    /// Calls a tool that should answer at once.
    pub async fn call_tool(&self, name: &str, arguments: impl Serialize) -> Result<ToolResult> {
        self.call_tool_within(name, arguments, REQUEST_TIMEOUT).await
    }

    /// Calls a tool, allowing `timeout` for the answer (for waiting tools).
    pub async fn call_tool_within(
        &self,
        name: &str,
        arguments: impl Serialize,
        timeout: Duration,
    ) -> Result<ToolResult> {
        let (is_error, data) = self.call_tool_as::<Value>(name, arguments, timeout).await?;
        Ok(ToolResult { is_error, data: data.unwrap_or_default() })
    }

    /// Calls a tool and decodes its `structuredContent` into `T`: `(isError, content)`.
    pub async fn call_tool_as<T: DeserializeOwned>(
        &self,
        name: &str,
        arguments: impl Serialize,
        timeout: Duration,
    ) -> Result<(bool, Option<T>)> {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let endpoint = &self.0.endpoint;
        if endpoint.sessionless {
            return self.call_sessionless(name, arguments, timeout, id).await;
        }
        let params = ToolParams { name, arguments, meta: None };
        let body = serde_json::to_string(&RpcRequest { jsonrpc: "2.0", id, method: "tools/call", params })?;
        let exchange = async {
            let (response, lease) =
                endpoint.http.send(endpoint.post(self.0.id.as_ref(), body), Kind::Request).await?;
            let response = expect_success(response, name).await?;
            read_reply::<CallResult<T>>(response, lease, id).await
        };
        let reply = within(timeout, name, exchange).await?;
        call_outcome(name, reply)
    }

    /// A tool call of the session-less revision: `_meta`, its headers, and the handle
    /// (kept from the first result that has one).
    async fn call_sessionless<T: DeserializeOwned>(
        &self,
        name: &str,
        arguments: impl Serialize,
        timeout: Duration,
        id: u64,
    ) -> Result<(bool, Option<T>)> {
        let handle = self.0.handle.get().map(|h| &**h);
        let arguments = WithHandle { arguments, handle };
        let params = ToolParams { name, arguments, meta: Some(RequestMeta::new()) };
        let body = serde_json::to_string(&RpcRequest { jsonrpc: "2.0", id, method: "tools/call", params })?;
        let endpoint = &self.0.endpoint;
        let mut request = endpoint.post(None, body);
        let headers = request.headers_mut();
        headers.insert(VERSION_HEADER, HeaderValue::from_static(SESSIONLESS_VERSION));
        headers.insert("mcp-method", HeaderValue::from_static("tools/call"));
        headers.insert("mcp-name", HeaderValue::from_str(name).map_err(|_| Error::new("bad tool name"))?);
        let exchange = async {
            let (response, lease) = endpoint.http.send(request, Kind::Request).await?;
            let response = expect_success(response, name).await?;
            if handle.is_some() {
                return read_reply::<CallResult<T>>(response, lease, id).await;
            }
            // Before the handle is known, look for it in the result.
            let reply = read_reply::<CallResult<Value>>(response, lease, id).await?;
            let found = reply.result.as_ref().and_then(|r| r.structured_content.as_ref());
            if let Some(handle) = found.and_then(|d| d.get("handle")).and_then(Value::as_str) {
                let _ = self.0.handle.set(handle.into());
            }
            let result = match reply.result {
                Some(r) => Some(CallResult {
                    is_error: r.is_error,
                    structured_content: r.structured_content.map(serde_json::from_value).transpose()?,
                }),
                None => None,
            };
            Ok(Reply { id: reply.id, result, error: reply.error })
        };
        let reply = within(timeout, name, exchange).await?;
        call_outcome(name, reply)
    }

    /// POSTs a notification or a response (the server answers 202 Accepted).
    pub async fn send_message(&self, message: Value) -> Result<()> {
        let endpoint = &self.0.endpoint;
        let exchange = async {
            let (response, lease) = endpoint
                .http
                .send(endpoint.post(self.0.id.as_ref(), message.to_string()), Kind::Request)
                .await?;
            let status = response.status();
            drain(response, lease).await?;
            if status.is_success() {
                Ok(())
            } else {
                Err(Error::new(format!("POST of a notification/response: HTTP {status}")))
            }
        };
        within(REQUEST_TIMEOUT, "POST", exchange).await
    }

    /// Answers a server request (the keep-alive `ping`) with an empty result.
    pub async fn answer(&self, id: Value) -> Result<()> {
        self.send_message(json!({"jsonrpc": "2.0", "id": id, "result": {}})).await
    }

    /// Opens the session's GET stream, where the server pushes notifications. The
    /// connection goes back to the pool if the server ends the stream.
    pub async fn open_stream(&self) -> Result<SseEvents> {
        let endpoint = &self.0.endpoint;
        let request = endpoint.request(Method::GET, self.0.id.as_ref(), "text/event-stream", Bytes::new());
        let opening = async {
            let (response, lease) = endpoint.http.send(request, Kind::Stream).await?;
            let response = expect_success(response, "GET stream").await?;
            Ok((response, lease))
        };
        let (response, lease) = within(REQUEST_TIMEOUT, "GET stream", opening).await?;
        Ok(Box::pin(Releasing::new(SseStream::new(response.into_body()), lease)))
    }

    /// Ends the session (DELETE). A session the server already forgot is fine.
    pub async fn delete(&self) -> Result<()> {
        if self.0.id.is_none() {
            return Ok(()); // Session-less: nothing to end (the lease lapses).
        }
        let endpoint = &self.0.endpoint;
        let request = endpoint.request(Method::DELETE, self.0.id.as_ref(), POST_ACCEPT, Bytes::new());
        let exchange = async {
            let (response, lease) = endpoint.http.send(request, Kind::Request).await?;
            let status = response.status();
            drain(response, lease).await?;
            if status.is_success()
                || status == StatusCode::NOT_FOUND
                || status == StatusCode::METHOD_NOT_ALLOWED
            {
                Ok(())
            } else {
                Err(Error::new(format!("DELETE: HTTP {status}")))
            }
        };
        within(REQUEST_TIMEOUT, "DELETE", exchange).await
    }
}

/// A `tools/call` response as `(isError, structuredContent)`, or its JSON-RPC error.
fn call_outcome<T>(name: &str, reply: Reply<CallResult<T>>) -> Result<(bool, Option<T>)> {
    if let Some(error) = reply.error {
        return Err(Error::new(format!("{name}: JSON-RPC error {error}")));
    }
    let result = reply.result.ok_or_else(|| Error::new(format!("{name}: a response without a result")))?;
    Ok((result.is_error, result.structured_content))
}

/// Bounds `future` by `limit`.
async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| Error::new(format!("{what}: no answer within {limit:?}")))?
}

/// Reads a body to its end and returns the connection to the pool.
async fn drain(response: Response<Incoming>, lease: Lease) -> Result<Bytes> {
    let body = response.into_body().collect().await.map_err(|e| Error::new(format!("HTTP body: {e}")))?;
    lease.release();
    Ok(body.to_bytes())
}

/// Passes a 2xx response through; anything else becomes an error with the body's start.
async fn expect_success(response: Response<Incoming>, what: &str) -> Result<Response<Incoming>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: String = String::from_utf8_lossy(&body).chars().take(200).collect();
    Err(Error::new(format!("{what}: HTTP {status}: {body}")))
}

/// Reads a POST response to its end and returns the JSON-RPC response answering `id`.
///
/// The body is read completely even after the answer, so the connection returns to the
/// pool. Both response forms of the transport are accepted: an SSE stream (what
/// session-mode servers send) or a single JSON body.
async fn read_reply<R: DeserializeOwned>(
    response: Response<Incoming>,
    lease: Lease,
    id: u64,
) -> Result<Reply<R>> {
    let is_json =
        response.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        let body = drain(response, lease).await?;
        return Ok(serde_json::from_slice(&body)?);
    }
    let mut events = SseStream::new(response.into_body());
    let mut reply = None;
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| Error::new(format!("SSE: {e}")))?;
        let Some(data) = event.data.filter(|d| !d.is_empty()) else { continue };
        // A notification on the stream parses too (no id, no result) and is skipped.
        let message: Reply<R> = serde_json::from_str(&data)?;
        if message.id.as_ref().and_then(Value::as_u64) == Some(id) {
            reply = Some(message);
        }
    }
    lease.release();
    reply.ok_or_else(|| Error::new(format!("the response stream ended without an answer to request {id}")))
}
