//! JSON-RPC batches, for sessions that negotiated `2025-03-26`.
//!
//! That revision lets a POST body be an array of requests and notifications (or of
//! responses) and requires servers to accept it; 2025-06-18 removed batches again. So a
//! batch is served only in a session that negotiated 2025-03-26, and refused with
//! `-32600` in any other (the session's version is on its [`Slot`]).
//!
//! Each message of a batch is answered exactly as if it had been POSTed alone (see
//! [`jsonrpc::answer_one`]), all of them concurrently, as JSON-RPC allows: a
//! `wait_for_events` in a batch does not hold up the `ping` next to it. The answer is
//! one `application/json` array of the responses, in the order of the requests (clients
//! match them by id); notifications and responses get none, and a batch of nothing else
//! is answered `202 Accepted`. A request cancelled with `notifications/cancelled` gets
//! no response in the array either. Progress notifications have no place in a JSON
//! array, so a blocking call in a batch sends none. `initialize` must not be batched
//! (2025-03-26, lifecycle), and gets an error.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{StatusCode, header};
use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};

use crate::jsonrpc::{self, INVALID_REQUEST, PostState, RpcError};
use crate::session;
use crate::state::slot::Slot;

/// The only revision with batches.
const BATCH_VERSION: ProtocolVersion = ProtocolVersion::V_2025_03_26;

/// Most messages in one batch. Each is served concurrently, so this bounds what one POST
/// can start at once; a client with more sends several batches.
pub const MAX_BATCH: usize = 64;

/// Whether `body` is a JSON array (the first non-blank byte is `[`).
pub fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Answers a POST whose body is a JSON array.
pub async fn answer(state: &PostState, parts: &Parts, body: &Bytes) -> Response {
    // Not JSON after all: answered (with -32700) as any other unparsable body.
    let Ok(messages) = serde_json::from_slice::<Vec<Value>>(body) else {
        return jsonrpc::answer_one(state, parts.clone(), body.clone()).await;
    };
    if !session::accepts(&parts.headers, "application/json")
        || !session::accepts(&parts.headers, "text/event-stream")
    {
        let text = "Not Acceptable: Client must accept both application/json and text/event-stream";
        return (StatusCode::NOT_ACCEPTABLE, text).into_response();
    }
    let slot = match state.sessions.session_for(&parts.headers) {
        Ok(slot) => slot,
        Err(refused) => return *refused,
    };
    if let Some(refused) = refusal(&slot, messages.len()) {
        return refused.into_response();
    }
    let answers =
        futures::future::join_all(messages.into_iter().map(|message| one(state, parts, message))).await;
    let answers: Vec<Value> = answers.into_iter().flatten().collect();
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let body = Value::Array(answers).to_string();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Why a batch of `len` messages is not served in `slot`'s session, if it is not.
fn refusal(slot: &Slot, len: usize) -> Option<RpcError> {
    let invalid = |message: String| RpcError { id: Value::Null, code: INVALID_REQUEST, message };
    let version = slot.protocol_version();
    if version != Some(&BATCH_VERSION) {
        let version = version.map_or("an unknown version", ProtocolVersion::as_str);
        return Some(invalid(format!(
            "Invalid Request: batch requests are not supported in protocol version {version}; JSON-RPC batches \
             exist only in {BATCH_VERSION}. Send one message per POST."
        )));
    }
    if len == 0 {
        return Some(invalid("Invalid Request: an empty batch".to_owned()));
    }
    (len > MAX_BATCH).then(|| {
        invalid(format!("Invalid Request: a batch holds at most {MAX_BATCH} messages, this one {len}"))
    })
}

/// The answer to one message of a batch, if it gets one.
async fn one(state: &PostState, parts: &Parts, message: Value) -> Option<Value> {
    let id = message.get("id").filter(|id| id.is_string() || id.is_number()).cloned();
    let is_request = id.is_some() && message.get("method").is_some();
    if is_request && message.get("method").and_then(Value::as_str) == Some("initialize") {
        let text = "initialize must not be part of a JSON-RPC batch, and this session is initialized already";
        return Some(error(id.unwrap_or(Value::Null), INVALID_REQUEST, text));
    }
    let body = Bytes::from(serde_json::to_vec(&message).ok()?);
    let response = jsonrpc::answer_one(state, parts.clone(), body).await;
    reply(response, id.filter(|_| is_request)).await
}

/// The JSON-RPC reply that `response` carries for the request `id` (`None` for a
/// notification or a response, or for a cancelled request).
async fn reply(response: Response, id: Option<Value>) -> Option<Value> {
    let status = response.status();
    if status == StatusCode::ACCEPTED {
        return None;
    }
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    // Our own answer, already bounded by what the tools return: no size limit of its own.
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.ok()?;
    let body = String::from_utf8_lossy(&body);
    if is_sse {
        // The server writes each message as one `data:` line (see `direct.rs`).
        return body
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .filter(|message| message.get("result").is_some() || message.get("error").is_some())
            .find(|message| id.as_ref().is_some_and(|id| message.get("id") == Some(id)));
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(message) if message.get("result").is_some() || message.get("error").is_some() => Some(message),
        // A refusal in plain text (e.g. the session ended meanwhile).
        _ => Some(error(id.unwrap_or(Value::Null), INVALID_REQUEST, body.trim())),
    }
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn only_json_arrays_are_batches() {
        assert!(is_batch(b" \n[{}]"));
        assert!(is_batch(b"[]"));
        assert!(!is_batch(br#"{"jsonrpc":"2.0"}"#));
        assert!(!is_batch(b""));
    }

    #[test]
    fn batches_are_for_2025_03_26_sessions_only() {
        let slot = Slot::new(chat_core::SessionId(1), Arc::from("s"), 4, 4);
        assert!(refusal(&slot, 1).is_some(), "no version yet");
        slot.set_protocol_version(ProtocolVersion::V_2025_06_18);
        let refused = refusal(&slot, 1).map(|e| e.message).unwrap_or_default();
        assert!(refused.contains("2025-06-18") && refused.contains("2025-03-26"), "{refused}");
        let old = Slot::new(chat_core::SessionId(2), Arc::from("t"), 4, 4);
        old.set_protocol_version(BATCH_VERSION);
        assert!(refusal(&old, 1).is_none());
        assert!(refusal(&old, MAX_BATCH).is_none());
        assert!(refusal(&old, 0).is_some());
        assert!(refusal(&old, MAX_BATCH + 1).is_some());
    }
}
