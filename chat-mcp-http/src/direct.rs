//! Direct answers to tool calls that never wait, without rmcp's per-request machinery.
//!
//! rmcp serves every POST of a session through that session's worker task and its
//! service loop: it spawns a task per request, passes the message and the answer through
//! four channels, and answers with an SSE stream that has its own keep-alive timer and
//! cancellation token. Profiling showed that this, not the chat logic, is where a relayed
//! message spends most of its time (see `docs/PERFORMANCE.md`).
//!
//! The tools that never wait (all but `wait_for_events` and `send_message_and_wait`) have
//! their answer as soon as the core has handled the command, so for those this module
//! answers in the HTTP handler itself, with an `application/json` body. The Streamable
//! HTTP transport lets a server answer any POST that way and requires clients to accept it.
//!
//! What stays identical: the same handler code runs (a [`ChatServer::view`] of the
//! session), so results, metrics and logs are the same. A request is answered here only
//! when rmcp would accept it too: the session exists and is initialized and not ending,
//! `Accept` names both `application/json` and `text/event-stream`, and an
//! `MCP-Protocol-Version` header, if any, is one this server speaks. Everything else (other
//! methods, blocking tools, anything unusual) goes to rmcp unchanged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use rmcp::ServerHandler;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, ServerJsonRpcMessage, ServerResult};
use rmcp::service::RequestContext;

use crate::handler::{ChatServer, SUPPORTED_VERSIONS};
use crate::state::hub::Hub;
use crate::state::slot::Slot;

/// Tools that may block (they are served by rmcp, which can cancel them and stream
/// progress while they wait).
const BLOCKING_TOOLS: [&str; 2] = ["wait_for_events", "send_message_and_wait"];

/// Answers eligible tool calls directly.
pub struct Direct {
    hub: Arc<Hub>,
    tools: Arc<ToolRouter<ChatServer>>,
}

impl Direct {
    /// Serves calls on `hub`'s sessions with the shared tool router.
    pub fn new(hub: Arc<Hub>, tools: Arc<ToolRouter<ChatServer>>) -> Self {
        Direct { hub, tools }
    }

    /// The answer to a POST with this head and body, or `None` to let rmcp serve it.
    pub async fn answer(&self, parts: &Parts, body: &Bytes) -> Option<Response> {
        let slot = self.session_of(&parts.headers)?;
        let peer = slot.peer()?.clone();
        let ClientJsonRpcMessage::Request(request) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        // A per-request protocol version (2026 drafts) takes rmcp's negotiation path.
        if request.request.get_meta().protocol_version().is_some() {
            return None;
        }
        let ClientRequest::CallToolRequest(call) = request.request else { return None };
        if BLOCKING_TOOLS.contains(&&*call.params.name) {
            return None;
        }
        let id = request.id;
        let server = ChatServer::view(self.hub.clone(), slot, self.tools.clone());
        let context = RequestContext::new(id.clone(), peer);
        let message = match server.call_tool(call.params, context).await {
            Ok(response) => ServerJsonRpcMessage::response(ServerResult::from(response), id),
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        };
        let body = match serde_json::to_vec(&message) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "cannot serialize a tool result");
                return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
        };
        Some((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
    }

    /// The live, initialized session a request belongs to, if rmcp would serve the
    /// request in it as well.
    fn session_of(&self, headers: &HeaderMap) -> Option<Arc<Slot>> {
        let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
        if !(contains_ignore_case(accept, "application/json")
            && contains_ignore_case(accept, "text/event-stream"))
        {
            return None;
        }
        if let Some(version) = headers.get("mcp-protocol-version") {
            let version = version.to_str().ok()?;
            if !SUPPORTED_VERSIONS.iter().any(|v| v.as_str() == version) {
                return None;
            }
        }
        let id = headers.get("mcp-session-id")?.to_str().ok()?;
        let slot = self.hub.slot_by_mcp(id)?;
        (!slot.ending().is_cancelled()).then_some(slot)
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
