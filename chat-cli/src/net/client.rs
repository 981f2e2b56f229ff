//! One MCP connection to the server: rmcp's Streamable HTTP client, pinned to the newest
//! protocol version that still has sessions (server-pushed notifications need the
//! session's GET stream), on a shared pooled HTTP client.
//!
//! rmcp's automatic re-initialisation on an expired session is off: it would silently
//! open a new session without our identity. The worker reconnects and resumes instead.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, CustomNotification,
    Implementation, ProtocolVersion,
};
use rmcp::service::{ClientInitializeError, NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::SseRetryPolicy;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

/// A pushed notification's params, tagged with the connection epoch it came from so
/// pushes from a replaced connection can be ignored.
pub type Push = (u64, Value);

/// Why a tool call did not return data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with `isError`: the request was refused.
    Tool {
        /// The machine-readable code (`message_too_large`, ...), if given.
        code: Option<String>,
        /// The server's actionable message.
        message: String,
    },
    /// The answer did not have the expected shape.
    Protocol(String),
    /// No answer: connection refused or lost, session gone, or timed out.
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Tool { message, .. } => f.write_str(message),
            CallError::Protocol(message) => write!(f, "unexpected answer from the server: {message}"),
            CallError::Transport(message) => f.write_str(message),
        }
    }
}

/// How rmcp re-opens a dropped SSE stream (the session's GET stream, or a POST's
/// response stream): a few quick tries, then give up. rmcp's default retries forever
/// with growing pauses, which would leave a tool call hanging on a dead server; giving
/// up instead fails the call, and the worker reconnects and resumes.
#[derive(Debug)]
struct QuickRetry;

impl SseRetryPolicy for QuickRetry {
    fn retry(&self, tries: usize) -> Option<Duration> {
        const PAUSES_MS: [u64; 3] = [250, 500, 1000];
        PAUSES_MS.get(tries).map(|ms| Duration::from_millis(*ms))
    }
}

/// Receives server notifications and forwards their params to the worker.
#[derive(Clone)]
struct Handler {
    epoch: u64,
    pushes: mpsc::UnboundedSender<Push>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("chat-cli", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _: NotificationContext<RoleClient>,
    ) {
        if let Some(params) = notification.params {
            let _ = self.pushes.send((self.epoch, params));
        }
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The MCP endpoint URL.
    pub url: String,
    /// Bearer token, if the server needs one.
    pub auth_token: Option<String>,
    /// The shared pooled HTTP client.
    pub http: reqwest::Client,
    /// Bound on connecting (initialize handshake).
    pub connect_timeout: Duration,
    /// Bound on ordinary tool calls.
    pub call_timeout: Duration,
}

/// An open MCP session.
pub struct Connection {
    service: RunningService<RoleClient, Handler>,
}

impl Connection {
    /// Connects (initialize handshake; the transport then opens the GET stream).
    /// `epoch` tags this connection's pushes.
    pub async fn open(
        endpoint: &Endpoint,
        epoch: u64,
        pushes: mpsc::UnboundedSender<Push>,
    ) -> Result<Connection, String> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(endpoint.url.as_str())
            .reinit_on_expired_session(false);
        config.retry_config = Arc::new(QuickRetry);
        if let Some(token) = &endpoint.auth_token {
            config = config.auth_header(token.clone());
        }
        let transport = StreamableHttpClientTransport::with_client(endpoint.http.clone(), config);
        let handler = Handler { epoch, pushes };
        match tokio::time::timeout(endpoint.connect_timeout, handler.serve(transport)).await {
            Ok(Ok(service)) => Ok(Connection { service }),
            Ok(Err(error)) => Err(describe_connect_error(&error, endpoint)),
            Err(_) => Err(format!("no answer within {}s", endpoint.connect_timeout.as_secs())),
        }
    }

    /// A handle for tool calls that can be used next to the connection.
    pub fn caller(&self, timeout: Duration) -> Caller {
        Caller { peer: self.service.peer().clone(), timeout }
    }

    /// Closes the session: rmcp sends HTTP DELETE, so the server ends it (and tells a
    /// partner) at once instead of after a timeout. Bounded by `limit`.
    pub async fn close(self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.service.cancel()).await;
    }
}

/// Makes rmcp's connection errors say what to check: the innermost cause (rmcp's own
/// message names internal types), plus a hint for the usual mistakes.
fn describe_connect_error(error: &ClientInitializeError, endpoint: &Endpoint) -> String {
    let ClientInitializeError::TransportError { error, .. } = error else {
        return error.to_string();
    };
    let (text, cause) = describe_transport(error.error.as_ref());
    match cause {
        Cause::Auth if endpoint.auth_token.is_some() => {
            format!("the server rejected the token given with --auth-token ({text})")
        }
        Cause::Auth => {
            format!("the server needs a token: pass --auth-token or set MCP_CHAT_AUTH_TOKEN ({text})")
        }
        Cause::Unreachable => format!("{text}; is the server running at that address?"),
        Cause::Other => text,
    }
}

/// What kind of transport failure it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// Nothing answered at the address.
    Unreachable,
    /// The server wants (another) bearer token.
    Auth,
    /// Anything else.
    Other,
}

/// A short human description of an rmcp HTTP transport error.
fn describe_transport(error: &(dyn std::error::Error + Send + Sync + 'static)) -> (String, Cause) {
    match error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        Some(StreamableHttpError::Client(http)) => {
            let mut text = http.to_string();
            let mut source = std::error::Error::source(http);
            while let Some(cause) = source {
                text = cause.to_string();
                source = cause.source();
            }
            let cause = if http.is_connect() { Cause::Unreachable } else { Cause::Other };
            let text = if http.is_timeout() { format!("timed out ({text})") } else { text };
            (text, cause)
        }
        Some(e @ (StreamableHttpError::AuthRequired(_) | StreamableHttpError::InsufficientScope(_))) => {
            (e.to_string().to_lowercase(), Cause::Auth)
        }
        Some(e) => (e.to_string(), Cause::Other),
        None => (error.to_string(), Cause::Other),
    }
}

/// Makes tool calls on one connection.
#[derive(Clone)]
pub struct Caller {
    peer: Peer<RoleClient>,
    timeout: Duration,
}

impl Caller {
    /// Calls `tool` with `arguments` (a JSON object) and returns its `structuredContent`.
    pub async fn call(&self, tool: &'static str, arguments: Value) -> Result<Value, CallError> {
        self.call_within(tool, arguments, self.timeout).await
    }

    /// Like [`Caller::call`] with its own time limit (for long polls).
    pub async fn call_within(
        &self,
        tool: &'static str,
        arguments: Value,
        limit: Duration,
    ) -> Result<Value, CallError> {
        let Value::Object(arguments) = arguments else {
            return Err(CallError::Protocol("tool arguments must be an object".into()));
        };
        let params = CallToolRequestParams::new(tool).with_arguments(arguments);
        match tokio::time::timeout(limit, self.peer.call_tool(params)).await {
            Err(_) => Err(CallError::Transport(format!("{tool}: no answer within {}s", limit.as_secs()))),
            Ok(Err(error)) => Err(classify(tool, error)),
            Ok(Ok(result)) => outcome(result),
        }
    }

    /// Calls `tool` and decodes its `structuredContent` as `T`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        tool: &'static str,
        arguments: Value,
    ) -> Result<T, CallError> {
        decode(self.call(tool, arguments).await?)
    }
}

/// JSON-RPC errors are answers (the server is there); everything else means the
/// connection is in trouble.
fn classify(tool: &str, error: rmcp::ServiceError) -> CallError {
    match error {
        rmcp::ServiceError::McpError(e) => {
            CallError::Tool { code: None, message: format!("{tool}: {}", e.message) }
        }
        rmcp::ServiceError::TransportSend(e) => CallError::Transport(describe_transport(e.error.as_ref()).0),
        rmcp::ServiceError::TransportClosed => CallError::Transport("the connection closed".into()),
        other => CallError::Transport(other.to_string()),
    }
}

fn outcome(result: CallToolResult) -> Result<Value, CallError> {
    if result.is_error == Some(true) {
        let data = result.structured_content.unwrap_or(Value::Null);
        let code = data.get("error").and_then(Value::as_str).map(str::to_owned);
        let message = match data.get("message").and_then(Value::as_str) {
            Some(message) => message.to_owned(),
            None => tool_error_text(
                &result
                    .content
                    .iter()
                    .filter_map(|c| c.as_text())
                    .map(|t| t.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        };
        return Err(CallError::Tool { code, message });
    }
    match result.structured_content {
        Some(data) => Ok(data),
        None => Err(CallError::Protocol("the result has no structuredContent".into())),
    }
}

/// The message of an error result's text: without the "Error: " prefix and the footer
/// about pending events.
fn tool_error_text(text: &str) -> String {
    let text = text.split("\n\n---").next().unwrap_or(text);
    text.strip_prefix("Error: ").unwrap_or(text).trim().to_owned()
}

/// Decodes a structured result; extra fields are ignored.
pub fn decode<T: DeserializeOwned>(data: Value) -> Result<T, CallError> {
    serde_json::from_value(data).map_err(|e| CallError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_loses_prefix_and_footer() {
        assert_eq!(
            tool_error_text("Error: message is too long\n\n---\n_1 unacknowledged event(s)_"),
            "message is too long"
        );
        assert_eq!(tool_error_text("plain"), "plain");
    }

    #[test]
    fn error_results_prefer_the_structured_message() {
        let mut result = CallToolResult::error(vec![rmcp::model::ContentBlock::text("Error: text form")]);
        result.structured_content =
            Some(serde_json::json!({"error": "message_too_large", "message": "structured form"}));
        assert_eq!(
            outcome(result),
            Err(CallError::Tool {
                code: Some("message_too_large".into()),
                message: "structured form".into()
            })
        );
        let result = CallToolResult::error(vec![rmcp::model::ContentBlock::text("Error: text form")]);
        assert_eq!(outcome(result), Err(CallError::Tool { code: None, message: "text form".into() }));
    }
}
