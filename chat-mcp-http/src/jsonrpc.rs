//! JSON-RPC errors for malformed requests.
//!
//! - **Unparsable bodies.** rmcp answers a body it cannot parse with a plain-text `415`,
//!   but JSON-RPC clients expect an error object. This middleware keeps a copy of each
//!   JSON POST body (a reference-counted buffer, so no extra parse on the normal path).
//!   When rmcp refuses the body, it answers `400` instead with `-32700 Parse error` (not
//!   JSON), `-32600 Invalid Request` (JSON but not a JSON-RPC 2.0 message) or
//!   `-32602 Invalid params` (a request whose params do not fit).
//! - **Batches.** A JSON array goes to `batch.rs`, which answers each of its messages
//!   with [`answer_one`], as if it had been POSTed alone.
//! - **Standard requests with bad params.** rmcp turns these into "custom" requests. The
//!   handler answers them through [`standard_params_error`] with `-32602` rather than
//!   rmcp's misleading `-32601 Method not found`.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Method, StatusCode, header};
#[allow(deprecated)] // resources/subscribe params: legacy-only in rmcp, current in 2025-11-25.
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, InitializeRequestParams, ReadResourceRequestParams,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::batch;
use crate::edge;
use crate::handler::Gateway;
use crate::session::Sessions;

/// rmcp's Streamable HTTP service, run statelessly with a [`Gateway`] per request.
pub type McpService = StreamableHttpService<Gateway, LocalSessionManager>;

/// What [`validate_post`] needs: the body size limit (the same as rmcp's), the session
/// layer, which answers what it can before rmcp, and rmcp for the rest.
#[derive(Clone)]
pub struct PostState {
    /// Largest accepted body, in bytes.
    pub limit: usize,
    /// How long reading a body may take (`--body-timeout`). This middleware is the one
    /// place request bodies are read (rmcp refuses the others before reading), so the
    /// deadline here covers every body.
    pub body_timeout: std::time::Duration,
    /// `initialize`, notifications, and tool calls.
    pub sessions: Arc<Sessions>,
    /// The same service as the `/mcp` route's. It is called from here rather than as the
    /// next layer because one POST may hold many messages (a batch).
    pub rmcp: McpService,
}

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
/// The message is not a valid JSON-RPC request (or not one this session may send).
pub const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC error for a body that cannot be served.
#[derive(Debug)]
pub struct RpcError {
    /// The request's id when it could be read, else `null`.
    pub id: Value,
    /// The JSON-RPC error code.
    pub code: i64,
    /// What is wrong.
    pub message: String,
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let body =
            json!({"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}});
        (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body.to_string())
            .into_response()
    }
}

/// For a standard MCP request method, what is wrong with `params` (`None` for other
/// methods, which really are unknown).
pub fn standard_params_error(method: &str, params: &Value) -> Option<String> {
    fn parse<T: serde::de::DeserializeOwned>(params: &Value) -> String {
        match serde_json::from_value::<T>(params.clone()) {
            Ok(_) => "params do not match the method's schema".to_owned(),
            Err(e) => e.to_string(),
        }
    }
    Some(match method {
        "initialize" => parse::<InitializeRequestParams>(params),
        "tools/call" => parse::<CallToolRequestParams>(params),
        "resources/read" => parse::<ReadResourceRequestParams>(params),
        "resources/subscribe" => parse::<SubscribeRequestParams>(params),
        "resources/unsubscribe" => parse::<UnsubscribeRequestParams>(params),
        "ping"
        | "tools/list"
        | "resources/list"
        | "resources/templates/list"
        | "prompts/list"
        | "prompts/get"
        | "completion/complete"
        | "logging/setLevel" => "params do not match the method's schema".to_owned(),
        _ => return None,
    })
}

/// Why a body is not a JSON-RPC message the server can take (`None` if it is one).
pub fn classify(bytes: &[u8]) -> Option<RpcError> {
    let parse_error = serde_json::from_slice::<ClientJsonRpcMessage>(bytes).err()?;
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => {
            return Some(RpcError {
                id: Value::Null,
                code: PARSE_ERROR,
                message: format!("Parse error: {e}"),
            });
        }
    };
    let Value::Object(message) = &value else {
        let what =
            if value.is_array() { "batch requests are not supported" } else { "expected a JSON object" };
        let message = format!("Invalid Request: {what}");
        return Some(RpcError { id: Value::Null, code: INVALID_REQUEST, message });
    };
    let id = message.get("id").filter(|id| id.is_string() || id.is_number()).cloned().unwrap_or(Value::Null);
    let well_formed = message.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
        && message.get("method").is_some_and(Value::is_string);
    Some(if well_formed && !id.is_null() {
        RpcError { id, code: INVALID_PARAMS, message: format!("Invalid params: {parse_error}") }
    } else {
        let message = format!("Invalid Request: not a JSON-RPC 2.0 message ({parse_error})");
        RpcError { id, code: INVALID_REQUEST, message }
    })
}

/// axum middleware for `/mcp`: answers JSON POSTs (one message or a batch), turns
/// rmcp's `415` for an unparsable JSON body into a JSON-RPC error, refuses bodies over
/// the limit with `413` (announced ones already at the edge, see `edge.rs`) and bodies
/// that do not arrive within `--body-timeout` with `408`.
pub async fn validate_post(State(state): State<PostState>, request: Request, next: Next) -> Response {
    let is_json =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json"))
        });
    if request.method() != Method::POST || !is_json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // A total deadline, not one per chunk: a body trickled a byte at a time would
    // otherwise hold its connection for as long as the client likes.
    let bytes: Bytes =
        match tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, state.limit)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return edge::payload_too_large(state.limit),
            Err(_) => {
                state.sessions.metrics().count_rejected("body_timeout");
                let message =
                    format!("Request Timeout: the body did not arrive within {:?}\n", state.body_timeout);
                return edge::closing(StatusCode::REQUEST_TIMEOUT, message);
            }
        };
    if batch::is_batch(&bytes) {
        return batch::answer(&state, &parts, &bytes).await;
    }
    answer_one(&state, parts, bytes).await
}

/// The answer to one JSON-RPC message: the session layer's if it has one, else rmcp's,
/// with a JSON-RPC error instead of rmcp's `415` for a body that is not a message.
pub async fn answer_one(state: &PostState, parts: Parts, bytes: Bytes) -> Response {
    if let Some(response) = state.sessions.post(&parts, &bytes).await {
        return response;
    }
    let response = state.rmcp.handle(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
        && let Some(error) = classify(&bytes)
    {
        tracing::debug!(bytes = bytes.len(), code = error.code, "rejected a malformed JSON-RPC body");
        return error.into_response();
    }
    response.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Option<i64> {
        let response = classify(body.as_bytes())?.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 10_000)).ok()?;
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        value["error"]["code"].as_i64()
    }

    #[test]
    fn classifies_bad_bodies() {
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
        assert_eq!(code("{nope"), Some(PARSE_ERROR));
        assert_eq!(code(""), Some(PARSE_ERROR));
        assert_eq!(code("[1,2]"), Some(INVALID_REQUEST));
        assert_eq!(code("42"), Some(INVALID_REQUEST));
        assert_eq!(code(r#"{"id":1}"#), Some(INVALID_REQUEST));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"chat/custom","params":[1]}"#),
            Some(INVALID_PARAMS)
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"chat/custom","params":{}}"#), None);
        assert_eq!(code(r#"{"jsonrpc":"2.0","method":"notifications/whatever"}"#), None);
    }

    #[test]
    fn explains_standard_methods_with_bad_params() {
        let problem = standard_params_error("tools/call", &json!({"arguments": 3}));
        assert!(problem.is_some_and(|p| p.contains("name") || p.contains("invalid type")));
        assert!(standard_params_error("chat/custom", &json!({})).is_none());
    }
}
