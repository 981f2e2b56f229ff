//! Direct answers to tool calls that never wait, without rmcp's per-request machinery.
//!
//! rmcp serves a request by spawning a service task for it, passing the message and the
//! answer through channels, and answering with an SSE stream that has its own keep-alive
//! timer and cancellation token. Profiling showed that this, not the chat logic, is where
//! a relayed message spent most of its time (see `docs/PERFORMANCE.md`).
//!
//! The tools that never wait (all but `wait_for_events` and `send_message_and_wait`) have
//! their answer as soon as the core has handled the command, so for those this module
//! answers in the HTTP handler itself, with an `application/json` body. The Streamable
//! HTTP transport lets a server answer any POST that way and requires clients to accept it.
//! The same handler code runs ([`ChatServer::call_tool`] on the session's view), so
//! results, metrics and logs are the same as on rmcp's path.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcRequest, ServerJsonRpcMessage, ServerResult,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::Transport;
use rmcp::{Peer, RoleServer, ServerHandler};

use crate::handler::ChatServer;
use crate::state::hub::Hub;
use crate::state::slot::Slot;

/// Tools that may block (they are served by rmcp, which can cancel them and stream
/// progress while they wait).
const BLOCKING_TOOLS: [&str; 2] = ["wait_for_events", "send_message_and_wait"];

/// Answers eligible tool calls directly.
pub struct Direct {
    hub: Arc<Hub>,
    tools: Arc<ToolRouter<ChatServer>>,
    /// A peer connected to nothing. `RequestContext` requires one, but the tools served
    /// here never use it (only the blocking tools send progress or watch cancellation).
    detached: Peer<RoleServer>,
    _service: RunningService<RoleServer, Detached>,
}

impl Direct {
    /// Serves calls on `hub`'s sessions with the shared tool router. Needs a tokio
    /// runtime (it starts the detached peer's service).
    pub fn new(hub: Arc<Hub>, tools: Arc<ToolRouter<ChatServer>>) -> Self {
        let service = rmcp::service::serve_directly(Detached, Unconnected, None);
        Direct { hub, tools, detached: service.peer().clone(), _service: service }
    }

    /// The answer to `request` in `slot`'s session, or `None` to let rmcp serve it.
    pub async fn answer(&self, slot: Arc<Slot>, request: JsonRpcRequest<ClientRequest>) -> Option<Response> {
        // A per-request protocol version (2026 drafts) takes rmcp's negotiation path.
        if request.request.get_meta().protocol_version().is_some() {
            return None;
        }
        let ClientRequest::CallToolRequest(call) = request.request else { return None };
        if BLOCKING_TOOLS.contains(&&*call.params.name) {
            return None;
        }
        let id = request.id;
        let server = ChatServer::new(self.hub.clone(), slot, self.tools.clone());
        let context = RequestContext::new(id.clone(), self.detached.clone());
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
}

/// The service behind the detached peer: answers nothing, because nothing reaches it.
pub struct Detached;

impl ServerHandler for Detached {}

/// A transport that never receives and discards what is sent.
struct Unconnected;

impl Transport<RoleServer> for Unconnected {
    type Error = std::io::Error;

    fn send(
        &mut self,
        _item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        std::future::ready(Ok(()))
    }

    fn receive(&mut self) -> impl Future<Output = Option<ClientJsonRpcMessage>> + Send {
        std::future::pending()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        std::future::ready(Ok(()))
    }
}
