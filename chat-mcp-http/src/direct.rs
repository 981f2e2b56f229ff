//! Direct answers to tool calls, without rmcp's per-request machinery.
//!
//! rmcp serves a request by spawning a service task for it, passing the message and the
//! answer through channels, and answering with an SSE stream that has its own keep-alive
//! timer and cancellation token. Profiling showed that this, not the chat logic, is where
//! a relayed message spent most of its time (see `docs/PERFORMANCE.md`).
//!
//! So tool calls are answered in the HTTP handler itself. The same handler code runs
//! ([`ChatServer::call_tool`] on the session's view), so results, metrics and logs are the
//! same as on rmcp's path. A tool that answers at once gets one `application/json`
//! message (the Streamable HTTP transport lets a server answer any POST that way and
//! requires clients to accept it). A blocking tool (`wait_for_events`,
//! `send_message_and_wait`) gets an SSE stream that carries keep-alives and then the
//! result, and is registered so `notifications/cancelled` stops it; if the request
//! carries a `progressToken`, rmcp serves it instead, with progress notifications.

use std::sync::Arc;

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{StatusCode, header};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcRequest, RequestParamsMeta, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::Transport;
use rmcp::{Peer, RoleServer, ServerHandler};

use crate::handler::{ChatServer, Surface};
use crate::state::hub::Hub;
use crate::state::slot::Slot;

/// Tools that may block; they can send progress while they wait.
const BLOCKING_TOOLS: [&str; 2] = ["wait_for_events", "send_message_and_wait"];

/// Answers eligible tool calls directly.
pub struct Direct {
    hub: Arc<Hub>,
    surface: Arc<Surface>,
    /// A peer connected to nothing. `RequestContext` requires one; the tools use it only
    /// to send progress, and requests that ask for progress are not served here.
    detached: Peer<RoleServer>,
    _service: RunningService<RoleServer, Detached>,
}

impl Direct {
    /// Serves calls on `hub`'s sessions with the shared tools. Needs a tokio runtime (it
    /// starts the detached peer's service).
    pub fn new(hub: Arc<Hub>, surface: Arc<Surface>) -> Self {
        let service = rmcp::service::serve_directly(Detached, Unconnected, None);
        Direct { hub, surface, detached: service.peer().clone(), _service: service }
    }

    /// The answer to `request` in `slot`'s session, or `None` to let rmcp serve it.
    pub async fn answer(&self, slot: Arc<Slot>, request: JsonRpcRequest<ClientRequest>) -> Option<Response> {
        // A per-request protocol version (2026 drafts) takes rmcp's negotiation path.
        let meta = request.request.get_meta();
        if meta.protocol_version().is_some() {
            return None;
        }
        let progress_in_meta = meta.get_progress_token().is_some();
        let ClientRequest::CallToolRequest(call) = request.request else { return None };
        let wants_progress = progress_in_meta || call.params.progress_token().is_some();
        let blocking = BLOCKING_TOOLS.contains(&&*call.params.name);
        if blocking && wants_progress {
            return None;
        }
        let id = request.id;
        let context = RequestContext::new(id.clone(), self.detached.clone());
        let in_flight = blocking.then(|| slot.track_request(id.to_string(), context.ct.clone()));
        let server = ChatServer::new(self.hub.clone(), slot, self.surface.clone());
        let run = async move {
            let _in_flight = in_flight;
            let message = match server.call_tool(call.params, context).await {
                Ok(response) => ServerJsonRpcMessage::response(ServerResult::from(response), id),
                Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
            };
            serde_json::to_string(&message).map_err(|error| {
                tracing::error!(%error, "cannot serialize a tool result");
            })
        };
        if !blocking {
            return Some(match run.await {
                Ok(body) => {
                    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Err(()) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            });
        }
        // A wait answers over SSE: the head goes out at once and keep-alive comments
        // flow while it waits, so proxies and clients do not time out an idle request. The
        // wait runs as the body is polled; a client that hangs up drops it.
        let answer = futures::stream::once(run).filter_map(|json| std::future::ready(json.ok()));
        let events = answer.map(|json| Ok::<_, Infallible>(SseEvent::default().data(json)));
        let keep_alive = KeepAlive::new().interval(self.hub.config.sse_keep_alive);
        Some(Sse::new(events).keep_alive(keep_alive).into_response())
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
