//! Minimal, lossless view of JSON-RPC messages.
//!
//! The bridge must work with any MCP server and any protocol revision, so it
//! never converts messages into a typed model (that drops unknown fields and
//! rejects unknown methods). Each message keeps its original text, which is
//! what gets forwarded; a `serde_json::Value` parse is used only to route it
//! (read `method` and `id`). Ids are additionally captured as raw JSON text so
//! that a synthesized error reply echoes e.g. `12345678901234567890123`
//! exactly, which a round-trip through `f64` would not.

use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

/// Logger name used in `notifications/message` the bridge emits itself.
pub const LOGGER: &str = "chat-mcp-stdio-bridge";

/// JSON-RPC "Parse error".
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;
/// Implementation-defined server error; used for transport failures.
pub const TRANSPORT_ERROR: i64 = -32000;

/// A request id: its exact JSON text plus its parsed value.
#[derive(Debug, Clone)]
pub struct Id {
    raw: String,
    value: Value,
}

impl Id {
    fn from_raw(raw: &RawValue) -> Option<Self> {
        let value = serde_json::from_str(raw.get()).ok()?;
        Some(Id { raw: raw.get().trim().to_string(), value })
    }

    /// Exact JSON text of the id as it appeared on the wire.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The parsed id.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Whether two ids denote the same request. Compared textually first
    /// (exact for huge numbers) and by value second (tolerates a server that
    /// re-spaces or re-formats the id).
    pub fn matches(&self, other: &Id) -> bool {
        self.raw == other.raw || self.value == other.value
    }
}

/// The `_meta` key of a request's own protocol version (MCP 2026-07-28).
pub const REQUEST_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// One JSON-RPC message (or, from the host, possibly a batch array).
#[derive(Debug, Clone)]
pub struct Message {
    raw: String,
    value: Value,
}

impl Message {
    /// Parses `text` for routing and keeps it verbatim for forwarding.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let value = serde_json::from_str(text)?;
        Ok(Message { raw: text.trim().to_string(), value })
    }

    /// Splits a server payload into single messages; a batch array becomes
    /// its elements (hosts' stdio transports expect one object per line).
    pub fn parse_many(text: &str) -> Result<Vec<Self>, serde_json::Error> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            let parts: Vec<&RawValue> = serde_json::from_str(text)?;
            parts.into_iter().map(|p| Message::parse(p.get())).collect()
        } else {
            Ok(vec![Message::parse(text)?])
        }
    }

    fn from_value(value: Value) -> Self {
        Message { raw: value.to_string(), value }
    }

    /// The original JSON text.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The text as a single line. SSE `data:` may spread one JSON document
    /// over several lines; raw newlines can only be insignificant whitespace
    /// in JSON (inside strings they must be escaped), so replacing them with
    /// spaces changes nothing but the layout.
    pub fn to_line(&self) -> String {
        if self.raw.contains(['\n', '\r']) { self.raw.replace(['\n', '\r'], " ") } else { self.raw.clone() }
    }

    pub fn is_batch(&self) -> bool {
        self.value.is_array()
    }

    pub fn method(&self) -> Option<&str> {
        self.value.get("method").and_then(Value::as_str)
    }

    /// The protocol version a request of the session-less revision (2026-07-28) carries
    /// in its own `_meta`, if it does.
    pub fn request_protocol_version(&self) -> Option<&str> {
        self.value.get("params")?.get("_meta")?.get(REQUEST_VERSION_META)?.as_str()
    }

    /// What the `Mcp-Name` header of this request names: `params.taskId` for `tasks/*`
    /// (the tasks extension), else `params.name` (tools, prompts) or `params.uri`
    /// (resources), if it has one.
    pub fn mcp_name(&self) -> Option<&str> {
        let params = self.value.get("params")?;
        if self.method().is_some_and(|m| m.starts_with("tasks/")) {
            return params.get("taskId")?.as_str();
        }
        params.get("name").or_else(|| params.get("uri"))?.as_str()
    }

    /// A request: has `method` and `id`.
    pub fn is_request(&self) -> bool {
        self.method().is_some() && self.value.get("id").is_some()
    }

    /// A notification: has `method` but no `id`.
    pub fn is_notification(&self) -> bool {
        self.method().is_some() && self.value.get("id").is_none()
    }

    /// A response or error: no `method`, but an `id`, `result` or `error`.
    pub fn is_response(&self) -> bool {
        self.value.is_object()
            && self.method().is_none()
            && (self.value.get("id").is_some()
                || self.value.get("result").is_some()
                || self.value.get("error").is_some())
    }

    /// The raw id of this single message, if it has one.
    pub fn id(&self) -> Option<Id> {
        let members: HashMap<String, &RawValue> = serde_json::from_str(&self.raw).ok()?;
        members.get("id").and_then(|raw| Id::from_raw(raw))
    }

    /// Ids of all requests in this message (one, or several for a batch):
    /// exactly the ids that must get an answer if the transport fails.
    pub fn request_ids(&self) -> Vec<Id> {
        if self.is_batch() {
            let Ok(parts) = serde_json::from_str::<Vec<&RawValue>>(&self.raw) else {
                return Vec::new();
            };
            parts
                .into_iter()
                .filter_map(|p| Message::parse(p.get()).ok())
                .filter(Message::is_request)
                .filter_map(|m| m.id())
                .collect()
        } else if self.is_request() {
            self.id().into_iter().collect()
        } else {
            Vec::new()
        }
    }

    /// For a `notifications/cancelled`, the id of the cancelled request.
    pub fn cancelled_request_id(&self) -> Option<Value> {
        if self.method() != Some("notifications/cancelled") {
            return None;
        }
        self.value.get("params")?.get("requestId").cloned()
    }

    /// `result.protocolVersion` of an initialize response.
    pub fn protocol_version(&self) -> Option<&str> {
        self.value.get("result")?.get("protocolVersion").and_then(Value::as_str)
    }

    pub fn is_error_response(&self) -> bool {
        self.is_response() && self.value.get("error").is_some()
    }

    /// Replaces the id (used to replay the host's `initialize` with an id the
    /// bridge owns, so its response can be recognised and swallowed).
    pub fn with_id(&self, id: &str) -> Self {
        let mut value = self.value.clone();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("id".into(), Value::String(id.to_string()));
        }
        Message::from_value(value)
    }
}

/// Builds an error response. The id is spliced in as raw text so that it is
/// byte-identical to what the host sent.
pub fn error_reply(id: Option<&Id>, code: i64, message: &str, data: Option<Value>) -> Message {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), Value::from(code));
    error.insert("message".into(), Value::from(message));
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    let error = Value::Object(error);
    let raw = format!(r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#, id.map_or("null", Id::raw), error);
    match Message::parse(&raw) {
        Ok(msg) => msg,
        // Unreachable in practice (both parts are valid JSON); fall back to a
        // null id rather than panic on an input path.
        Err(_) => Message::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": null, "error": error
        })),
    }
}

/// A notification built by the bridge.
pub fn notification(method: &str, params: Option<Value>) -> Message {
    let mut obj = serde_json::Map::new();
    obj.insert("jsonrpc".into(), Value::from("2.0"));
    obj.insert("method".into(), Value::from(method));
    if let Some(params) = params {
        obj.insert("params".into(), params);
    }
    Message::from_value(Value::Object(obj))
}

/// A `notifications/message` from the bridge itself, used to tell the host
/// about transport events it would otherwise never see (session renewal).
pub fn log_notification(level: &str, data: Value) -> Message {
    notification(
        "notifications/message",
        Some(serde_json::json!({ "level": level, "logger": LOGGER, "data": data })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_less_request_names_its_version_and_target() {
        let call = Message::parse(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"enter_queue","arguments":{},
                "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        )
        .expect("json");
        assert_eq!(call.request_protocol_version(), Some("2026-07-28"));
        assert_eq!(call.mcp_name(), Some("enter_queue"));
        let read = Message::parse(
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"chat://inbox"}}"#,
        )
        .expect("json");
        assert_eq!(read.request_protocol_version(), None, "a 2025 request carries no version of its own");
        assert_eq!(read.mcp_name(), Some("chat://inbox"));
        let poll = Message::parse(
            r#"{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{"taskId":"t-1","name":"not-this"}}"#,
        )
        .expect("json");
        assert_eq!(poll.mcp_name(), Some("t-1"), "tasks are named by their id");
    }

    #[test]
    fn classification() {
        let req = Message::parse(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).expect("json");
        assert!(req.is_request() && !req.is_notification() && !req.is_response());
        let note = Message::parse(r#"{"jsonrpc":"2.0","method":"x"}"#).expect("json");
        assert!(note.is_notification() && note.request_ids().is_empty());
        let resp = Message::parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).expect("json");
        assert!(resp.is_response() && !resp.is_error_response());
    }

    #[test]
    fn big_ids_survive_error_replies() {
        let req =
            Message::parse(r#"{"jsonrpc":"2.0","id":12345678901234567890123,"method":"x"}"#).expect("json");
        let ids = req.request_ids();
        assert_eq!(ids.len(), 1);
        let reply = error_reply(ids.first(), TRANSPORT_ERROR, "down", None);
        assert!(reply.raw().contains(r#""id":12345678901234567890123,"#), "{}", reply.raw());
    }

    #[test]
    fn batches() {
        let batch = Message::parse(
            r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"s","method":"b"}]"#,
        )
        .expect("json");
        let ids: Vec<String> = batch.request_ids().iter().map(|i| i.raw().to_string()).collect();
        assert_eq!(ids, vec!["1".to_string(), "\"s\"".to_string()]);
        let parts =
            Message::parse_many(r#"[ {"id":1, "result":2.50} , {"id":2,"result":null}]"#).expect("json");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].raw(), r#"{"id":1, "result":2.50}"#);
    }

    #[test]
    fn multi_line_payload_becomes_one_line() {
        let msg = Message::parse("{\"a\":\n \"b\\nc\"\r\n}").expect("json");
        assert_eq!(msg.to_line(), "{\"a\":  \"b\\nc\"  }");
    }

    #[test]
    fn ids_match_textually_or_by_value() {
        let a = Message::parse(r#"{"id": 1 ,"result":1}"#).expect("json");
        let b = Message::parse(r#"{"id":1.0,"method":"m"}"#).expect("json");
        let (a, b) = (a.id().expect("id"), b.id().expect("id"));
        assert_eq!(a.raw(), "1");
        // 1 and 1.0 are different JSON values for serde_json; textual match fails too.
        assert!(!a.matches(&b));
        assert!(a.matches(&a.clone()));
    }
}
