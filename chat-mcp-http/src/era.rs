//! The two eras of MCP on one endpoint, and identity by handle.
//!
//! - **2025 revisions** (2025-03-26 … 2025-11-25): `initialize` opens a session, named by
//!   `Mcp-Session-Id`; the session is the caller's identity.
//! - **2026-07-28**, session-less: no `initialize`, no `Mcp-Session-Id`; every request
//!   carries its protocol version in `_meta`. rmcp serves these requests statelessly
//!   (`server/discover`, per-request version checks, `-32022` for a version this server
//!   does not speak, `subscriptions/listen`); [`crate::handler::Gateway`] finds the
//!   caller's session from the `handle` tool argument instead.
//!
//! A **handle** is the key of a core session, exactly as `Mcp-Session-Id` is one: a
//! binding tool (`enter_queue`, `checkin_client`, `resume_session`) called without one
//! opens a leased core session (`chat_core::Limits::lease`) under a fresh unguessable key
//! and returns it, with `inbox_uri`, the URI to name in `subscriptions/listen`. Every tool
//! takes `handle`: in 2026-07-28 it is required (except on a first binding call); in a
//! 2025 session it is optional and, when given, must be the session's own. So the tools,
//! their checks and their results are the same code in both eras; only how the session is
//! found differs.

use std::sync::Arc;

use rmcp::model::{CallToolResult, JsonObject, Tool};
use serde_json::{Value, json};

use crate::resources;
use crate::state::slot::Slot;
use crate::tools;

/// The tool argument that names the caller's session in the session-less revision.
pub const HANDLE: &str = "handle";

/// The tools that bind a session to an identity; called without a handle in the
/// session-less revision, they open a session and return its handle.
pub const BINDING_TOOLS: [&str; 3] = ["enter_queue", "checkin_client", "resume_session"];

/// The `handle` argument's description in every tool's input schema.
pub const HANDLE_DESCRIPTION: &str = "Your handle, from the `handle` field of the first \
enter_queue, checkin_client or resume_session result. Required when your client has no MCP \
session (protocol 2026-07-28); optional in a session (then it must be that session's). \
Never share it: it acts as you.";

/// What a binding tool's description adds about the handle it returns.
pub const BINDING_NOTE: &str = " Returns `handle`: without an MCP session (protocol 2026-07-28) pass it to every other tool; and `inbox_uri`, to name in subscriptions/listen.";

/// Adds the optional `handle` argument to `tool`'s input schema (and, for a binding tool,
/// says in its description that it returns one).
pub fn add_handle_argument(tool: &mut Tool) {
    if BINDING_TOOLS.contains(&&*tool.name)
        && let Some(description) = &tool.description
    {
        tool.description = Some(format!("{description}{BINDING_NOTE}").into());
    }
    let mut schema = tool.input_schema.as_ref().clone();
    let properties = schema.entry("properties").or_insert_with(|| Value::Object(JsonObject::new()));
    if let Value::Object(properties) = properties {
        properties.insert(HANDLE.into(), json!({ "type": "string", "description": HANDLE_DESCRIPTION }));
    }
    schema.entry("type").or_insert_with(|| json!("object"));
    tool.input_schema = Arc::new(schema);
}

/// The `handle` argument of a call, taken out of `arguments` (the tools themselves never
/// see it): `Ok(None)` when absent, `null` or empty, `Err` when it is not a string.
pub fn take_handle(arguments: &mut Option<JsonObject>) -> Result<Option<String>, String> {
    match arguments.as_mut().and_then(|a| a.remove(HANDLE)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(handle)) if handle.trim().is_empty() => Ok(None),
        Some(Value::String(handle)) => Ok(Some(handle)),
        Some(other) => {
            Err(format!("`{HANDLE}` must be a string (the handle a binding tool returned), got {other}"))
        }
    }
}

/// The `handle` argument of a call, left in place.
pub fn peek_handle(arguments: Option<&JsonObject>) -> Option<&str> {
    arguments.and_then(|a| a.get(HANDLE)).and_then(Value::as_str).filter(|h| !h.trim().is_empty())
}

/// The `isError` result of a session-less call without a handle.
pub fn missing_handle(tool: &str) -> CallToolResult {
    let message = format!(
        "{tool} needs `{HANDLE}`: without an MCP session (protocol 2026-07-28) every call names \
         its caller by the handle that enter_queue, checkin_client or resume_session returned. \
         Call one of those first (resume_session {{user_id, resume_token}} to get a new handle for \
         an identity you had), then pass `{HANDLE}` to {tool}."
    );
    tools::refusal("handle_required", &message, 0)
}

/// The `isError` result of a session-less call whose handle names no live session.
pub fn unknown_handle(tool: &str) -> CallToolResult {
    let message = format!(
        "the `{HANDLE}` given to {tool} is unknown or has expired (its lease lapsed and the \
         reconnect grace ran out, or it was mistyped). Get a new one: resume_session {{user_id, \
         resume_token}} restores your identity, or enter_queue / checkin_client start afresh."
    );
    tools::refusal("unknown_handle", &message, 0)
}

/// The `isError` result of a call in a session that names another session's handle.
pub fn foreign_handle(tool: &str, pending: usize) -> CallToolResult {
    let message = format!(
        "the `{HANDLE}` given to {tool} does not belong to this MCP session. In a session the \
         session is your identity: omit `{HANDLE}`, or pass the one this session's \
         enter_queue, checkin_client or resume_session returned."
    );
    tools::refusal("wrong_handle", &message, pending)
}

/// The inbox URI of `slot`'s session, to subscribe to: `chat://inbox/{secret}` for a
/// session-less session, `chat://inbox` (with `resources/subscribe`) in a 2025 session.
pub fn inbox_uri(slot: &Slot) -> String {
    match slot.inbox() {
        Some(inbox) => resources::inbox_uri(inbox),
        None => resources::INBOX_URI.to_owned(),
    }
}

/// Adds `handle` and `inbox_uri` to a binding tool's successful result.
pub fn add_binding(result: &mut CallToolResult, slot: &Slot) {
    let uri = inbox_uri(slot);
    if let Some(Value::Object(data)) = &mut result.structured_content {
        data.insert(HANDLE.into(), json!(&*slot.mcp_id));
        data.insert("inbox_uri".into(), json!(uri));
    }
    let how = if slot.is_sessionless() {
        "pass it as `handle` to every tool; subscriptions/listen on the inbox URI tells you when \
         to fetch with wait_for_events"
    } else {
        "this session already identifies you; the handle is optional here"
    };
    let note = format!("\nHandle: {} ({how}). Inbox: {uri}", slot.mcp_id);
    result.content.push(rmcp::model::ContentBlock::text(note));
}
