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
//! `send_message_and_wait`) gets an SSE stream that carries keep-alives, the progress
//! notifications the request asked for with a `progressToken`, and then the result.
//!
//! Every event of such a stream has an id (`post-<stream>-<n>`, never a GET stream's
//! plain number), so that a client can tell them apart and resume. For sessions on
//! 2025-11-25 or later the stream starts with a priming event, an id and empty data
//! with `retry:` (`--sse-retry`), as that revision asks. Older revisions have no priming
//! event, and their clients may fail to parse one's empty data (early TypeScript SDKs
//! did), so their streams start with the first message.
//!
//! A blocking call is registered so that `notifications/cancelled` stops it. Cancelling
//! drops the call where it waits and sends **no** response, as the spec asks ("the
//! receiver SHOULD NOT send a response for the cancelled request"): the stream just ends.
//! This is why calls that ask for progress are served here too rather than by rmcp,
//! which always answers a request its handler returns from.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::PollNext;
use http::{StatusCode, header};
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcRequest, RequestId,
    RequestMetaObject, RequestParamsMeta, ServerJsonRpcMessage, ServerResult,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::Transport;
use rmcp::{Peer, RoleServer, ServerHandler};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::handler::{ChatServer, Surface};
use crate::session;
use crate::state::hub::Hub;
use crate::state::slot::Slot;

/// Tools that may block; they can send progress while they wait.
const BLOCKING_TOOLS: [&str; 2] = ["wait_for_events", "send_message_and_wait"];

/// Progress notifications a blocking call may have queued for its stream. One comes per
/// `--progress-interval`, so a client that reads its stream never gets near this; for
/// one that does not, further progress is dropped (it is advisory) rather than making the
/// wait itself wait.
const PROGRESS_QUEUE: usize = 8;

/// Numbers the server's POST streams, so their event ids are unique in every session.
static POST_STREAMS: AtomicU64 = AtomicU64::new(0);

/// The id of the `n`th event (0 = the priming event) of POST stream `stream`. The prefix
/// keeps it apart from the GET stream's ids, which are plain numbers.
fn post_event_id(stream: u64, n: u64) -> String {
    format!("post-{stream}-{n}")
}

/// Answers eligible tool calls directly.
pub struct Direct {
    hub: Arc<Hub>,
    surface: Arc<Surface>,
    /// A peer connected to nothing. `RequestContext` requires one; the tools use it only
    /// to send progress, and a call that asks for progress gets a peer of its own.
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
    pub async fn answer(
        &self,
        slot: Arc<Slot>,
        mut request: JsonRpcRequest<ClientRequest>,
    ) -> Option<Response> {
        // A per-request protocol version (2026 drafts) takes rmcp's negotiation path.
        if request.request.get_meta().protocol_version().is_some()
            || !matches!(request.request, ClientRequest::CallToolRequest(_))
        {
            return None;
        }
        // As rmcp does: the request's `_meta` (its progress token) goes to the context.
        let mut meta = std::mem::take(request.request.get_meta_mut());
        let ClientRequest::CallToolRequest(call) = request.request else { return None };
        if meta.get_progress_token().is_none()
            && let Some(token) = call.params.progress_token()
        {
            meta.set_progress_token(token);
        }
        let id = request.id;
        if BLOCKING_TOOLS.contains(&&*call.params.name) {
            return Some(self.blocking(slot, id, call.params, meta));
        }
        let context = RequestContext::new(id.clone(), self.detached.clone());
        let server = ChatServer::new(self.hub.clone(), slot, self.surface.clone());
        let message = match server.call_tool(call.params, context).await {
            Ok(response) => ServerJsonRpcMessage::response(ServerResult::from(response), id),
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        };
        Some(match to_json(&message) {
            Some(body) => {
                (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        })
    }

    /// A blocking call, answered over SSE: the head goes out at once and keep-alive
    /// comments flow while it waits, so proxies and clients do not time out an idle
    /// request. The call runs as the body is polled; a client that hangs up drops it.
    fn blocking(
        &self,
        slot: Arc<Slot>,
        id: RequestId,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
    ) -> Response {
        // Progress goes through a peer of the call's own, whose transport feeds this
        // stream. The transport holds the queue weakly: the queue closes, and the stream
        // can end, as soon as the call is over and drops `progress`.
        let (progress, mut progress_rx) = if meta.get_progress_token().is_some() {
            let (tx, rx) = mpsc::channel(PROGRESS_QUEUE);
            let service = rmcp::service::serve_directly(Detached, Forward(tx.downgrade()), None);
            (Some((service, tx)), Some(rx))
        } else {
            (None, None)
        };
        let peer =
            progress.as_ref().map_or_else(|| self.detached.clone(), |(service, _)| service.peer().clone());
        let mut context = RequestContext::new(id.clone(), peer);
        context.meta = meta;
        // `notifications/cancelled` cancels this token. The tool's own `context.ct` is
        // left alone: a tool that saw it would return a result, which must not be sent.
        let cancelled = CancellationToken::new();
        let in_flight = slot.track_request(id.to_string(), cancelled.clone());
        let session = slot.id;
        let primed = session::primes(&slot);
        let server = ChatServer::new(self.hub.clone(), slot, self.surface.clone());
        let tool = params.name.clone();
        let run = async move {
            let _in_flight = in_flight;
            let _progress = progress;
            // Biased: a result that is ready when the cancellation lands is sent, not
            // dropped (send_message_and_wait may have taken a reply out of the mailbox).
            // Otherwise the call is dropped at the await where it waits, between two looks at
            // the core, so it has taken nothing that would be lost with it.
            let result = tokio::select! {
                biased;
                result = server.call_tool(params, context) => result,
                () = cancelled.cancelled() => {
                    tracing::info!(%session, %tool, "tool call cancelled by the client; no response");
                    return None;
                }
            };
            let message = match result {
                Ok(response) => ServerJsonRpcMessage::response(ServerResult::from(response), id),
                Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
            };
            to_json(&message)
        };
        let progress = futures::stream::poll_fn(move |cx| match &mut progress_rx {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        });
        // Progress first: everything the call queued before it returned goes out before
        // its result.
        let messages = futures::stream::select_with_strategy(
            progress,
            futures::stream::once(run).filter_map(std::future::ready),
            |(): &mut ()| PollNext::Left,
        );
        let stream = POST_STREAMS.fetch_add(1, Ordering::Relaxed);
        let events = messages.enumerate().map(move |(n, json)| {
            let id = post_event_id(stream, u64::try_from(n).map_or(u64::MAX, |n| n.saturating_add(1)));
            Ok::<_, Infallible>(SseEvent::default().id(id).data(json))
        });
        let keep_alive = KeepAlive::new().interval(self.hub.config.sse_keep_alive);
        let response = Sse::new(events).keep_alive(keep_alive).into_response();
        if !primed {
            return response;
        }
        session::primed(response, &post_event_id(stream, 0), self.hub.config.sse_retry)
    }
}

/// `message` as JSON; a failure (which would be a bug) is logged and the message skipped.
fn to_json(message: &ServerJsonRpcMessage) -> Option<String> {
    serde_json::to_string(message)
        .inspect_err(|error| tracing::error!(%error, "cannot serialize a message"))
        .ok()
}

/// The service behind the detached peer: answers nothing, because nothing reaches it.
pub struct Detached;

impl ServerHandler for Detached {}

/// The transport of a blocking call's own peer: what the call sends (its progress
/// notifications) goes to the call's SSE stream; it never receives.
struct Forward(mpsc::WeakSender<String>);

impl Transport<RoleServer> for Forward {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let sent = match (self.0.upgrade(), to_json(&item)) {
            (Some(queue), Some(json)) => match queue.try_send(json) {
                // A full queue drops the progress notification (see `PROGRESS_QUEUE`).
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(std::io::ErrorKind::BrokenPipe.into()),
            },
            (Some(_), None) => Ok(()),
            (None, _) => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        std::future::ready(sent)
    }

    fn receive(&mut self) -> impl Future<Output = Option<ClientJsonRpcMessage>> + Send {
        std::future::pending()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        std::future::ready(Ok(()))
    }
}

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
