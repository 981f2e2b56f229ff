//! The MCP request handlers.
//!
//! [`ChatServer`] is one session's handler: the tools (see `tools.rs`), resources,
//! logging (see `logging.rs`), and tool dispatch with argument checks and metrics. It is a
//! cheap view (the hub, the session's slot, the shared [`Surface`]) made per request.
//! [`Gateway`] is what rmcp runs for the requests the session layer (`session.rs`) hands
//! it: rmcp serves those statelessly, so the gateway finds the session from the request's
//! `Mcp-Session-Id` and delegates to its view; a request of the session-less revision
//! (2026-07-28) names its session by the `handle` tool argument instead (see `era.rs`).
// resources/subscribe and logging are "legacy-only" in rmcp 3.9 but current for 2025-11-25.
#![allow(deprecated)]

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use chat_core::{Hold, SessionEnd};
use futures::StreamExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CustomRequest, CustomResult, ErrorCode,
    GetTaskParams, GetTaskResult, Implementation, InitializeRequestParams, InitializeResult, JsonObject,
    ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerInfo, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::arguments;
use crate::era;
use crate::jsonrpc;
use crate::logging;
use crate::output;
use crate::resources;
use crate::session;
use crate::state::hub::Hub;
use crate::state::slot::Slot;
use crate::tasks::Tasks;
use crate::tools;

/// The protocol version this server prefers: the newest that still has the `initialize`
/// handshake and therefore sessions, a GET stream and server-pushed notifications.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// Versions a client may negotiate at `initialize`. 2026-07-28 has no handshake (and no
/// sessions), so a client asking for it there is offered 2025-11-25 instead.
pub const SUPPORTED_VERSIONS: [ProtocolVersion; 3] =
    [ProtocolVersion::V_2025_03_26, ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25];

/// Every version this server speaks: the handshake ones and the session-less 2026-07-28,
/// which is served per request (see `era.rs`). `server/discover` lists them, and a request
/// for any other gets `-32022` with this list in `data.supported`.
pub const ALL_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

/// The `instructions` of the initialize result: how a model uses this server.
pub const INSTRUCTIONS: &str = "\
mcp-chat connects you with people or other agents.
- Random 1-on-1 chat: call enter_queue (optional display_name, interests). When matched you get a chatroom.found event with a room_id; talk with send_message {room_id, message}; leave_chat ends it (requeue: true finds the next partner).
- Agent messaging: call checkin_client {client_id}; send_message {recipient_id, message} leaves a message (kept while they are offline), send_message_and_wait blocks until they reply, get_messages reads your mailbox, list_clients shows who is known.
- Events (matches, messages, partner leaving, typing) are pushed as notifications, but your client may not show them: call wait_for_events (blocks up to 25 s) and pass after_seq = the next_after_seq of the previous result. Every result says how many events are pending.
- Keep the resume_token you are given: an id is yours only with it. After a disconnect or a restart, resume_session {user_id, resume_token} (or checkin_client / enter_queue with resume_token) restores your identity, mailbox and room.
- enter_queue, checkin_client and resume_session return a handle. Without an MCP session (protocol 2026-07-28) pass it as `handle` to every other tool: it is who you are. In a session it is optional. Keep it secret. The result's inbox_uri is what to name in subscriptions/listen (resourceSubscriptions) to be told when events arrive; then fetch them with wait_for_events {handle, after_seq}.";

/// What every session's view shares, built once per server: the router with every tool,
/// and the logging level each session set (per session, but every request's view of the
/// session must see it, and the views are made per request).
pub struct Surface {
    /// Every tool.
    pub tools: ToolRouter<ChatServer>,
    /// `logging/setLevel`, by session.
    pub levels: logging::Levels,
}

/// One MCP session's handler.
pub struct ChatServer {
    pub(crate) hub: Arc<Hub>,
    pub(crate) slot: Arc<Slot>,
    pub(crate) surface: Arc<Surface>,
}

impl ChatServer {
    /// The handler of the session in `slot`. `surface` is built once and shared.
    pub fn new(hub: Arc<Hub>, slot: Arc<Slot>, surface: Arc<Surface>) -> Self {
        ChatServer { hub, slot, surface }
    }

    /// The tools and the sessions' logging levels; build once per server.
    pub fn router() -> Arc<Surface> {
        let mut tools = Self::tool_router();
        for route in tools.map.values_mut() {
            era::add_handle_argument(&mut route.attr);
            let tool = &mut route.attr;
            let mut input = tool.input_schema.as_ref().clone();
            output::portable(&mut input);
            tool.input_schema = Arc::new(input);
            if let Some(schema) = &tool.output_schema {
                let mut schema = schema.as_ref().clone();
                output::portable(&mut schema);
                tool.output_schema = Some(Arc::new(schema));
            }
        }
        Arc::new(Surface { tools, levels: logging::Levels::default() })
    }
}

/// The `initialize` result for `request`, with the version negotiated among
/// [`SUPPORTED_VERSIONS`] by rmcp's rules.
pub fn initialize_result(request: &InitializeRequestParams) -> Result<InitializeResult, ErrorData> {
    struct Negotiator;
    impl ServerHandler for Negotiator {
        fn get_info(&self) -> ServerInfo {
            server_info()
        }
        fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
            Cow::Borrowed(&SUPPORTED_VERSIONS)
        }
    }
    Negotiator.negotiate_initialize(request)
}

/// The capabilities, identity and instructions announced at `initialize`.
pub fn server_info() -> ServerInfo {
    // No `completions` or `prompts`: the server has nothing to complete and no prompts.
    let capabilities = ServerCapabilities::builder()
        .enable_tools()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_logging()
        .build();
    ServerInfo::new(capabilities)
        .with_protocol_version(PROTOCOL_VERSION)
        .with_server_info(Implementation::new("mcp-chat", env!("CARGO_PKG_VERSION")).with_title("mcp-chat"))
        .with_instructions(INSTRUCTIONS)
}

impl ChatServer {
    /// A tool call whose `handle` checked out: its arguments against the schema, then the
    /// tool.
    async fn call_checked(
        &self,
        tool: &'static str,
        definition: &rmcp::model::Tool,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match arguments::check(tool, &definition.input_schema, request.arguments.take()) {
            Err(problem) => {
                let pending = self.hub.pending_events(self.slot.id);
                Ok(CallToolResponse::Complete(tools::refuse_arguments(problem, pending)))
            }
            Ok(checked) => {
                for converted in &checked.converted {
                    self.log_debug(converted.log_data(tool));
                }
                request.arguments = checked.arguments;
                let mut result = self.surface.tools.call(ToolCallContext::new(self, request, context)).await;
                if let Ok(CallToolResponse::Complete(r)) = &mut result
                    && r.is_error == Some(true)
                    && r.structured_content.is_none()
                {
                    // rmcp's own message for arguments that do not fit the schema: make it
                    // actionable and give it the same shape as every other error.
                    let required = definition.input_schema.get("required").cloned();
                    tools::explain_argument_error(r, tool, required, self.hub.pending_events(self.slot.id));
                }
                result
            }
        }
    }
}

#[tool_handler(router = self.surface.tools)]
impl ServerHandler for ChatServer {
    fn get_info(&self) -> ServerInfo {
        server_info()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&SUPPORTED_VERSIONS)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let tool = tools::static_name(&request.name);
        let Some(definition) = self.surface.tools.get(&request.name) else {
            let message =
                format!("unknown tool `{}`; the tools are: {}", request.name, tools::TOOL_NAMES.join(", "));
            return Err(ErrorData::invalid_params(message, None));
        };
        // `handle` names the session (see `era.rs`): the gateway found this session by it
        // when there is no MCP session; in one, it must be the session's own.
        let handle = era::take_handle(&mut request.arguments);
        let result = match handle.map(|handle| handle.filter(|h| **h != *self.slot.mcp_id)) {
            Err(problem) => {
                let pending = self.hub.pending_events(self.slot.id);
                Ok(CallToolResponse::Complete(tools::refuse_arguments(problem, pending)))
            }
            Ok(Some(_foreign)) => {
                let pending = self.hub.pending_events(self.slot.id);
                Ok(CallToolResponse::Complete(era::foreign_handle(tool, pending)))
            }
            Ok(None) => self.call_checked(tool, definition, request, context).await,
        };
        let is_error = match &result {
            Ok(CallToolResponse::Complete(r)) => r.is_error == Some(true),
            Ok(_) => false,
            Err(_) => true,
        };
        let mut result = result;
        if !is_error
            && era::BINDING_TOOLS.contains(&tool)
            && let Ok(CallToolResponse::Complete(r)) = &mut result
        {
            era::add_binding(r, &self.slot);
        }
        let elapsed = started.elapsed();
        self.hub.metrics.observe_tool(tool, elapsed, is_error);
        tracing::info!(
            session = %self.slot.id,
            tool,
            is_error,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "tool call"
        );
        result
    }
    /// rmcp hands a standard request whose params do not parse to this method as a
    /// "custom" request; answer it with `-32602 Invalid params` and the reason instead of
    /// `-32601 Method not found`.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let params = request.params.unwrap_or(serde_json::Value::Null);
        match jsonrpc::standard_params_error(&request.method, &params) {
            Some(problem) => Err(ErrorData::invalid_params(
                format!("Invalid params for {}: {problem}", request.method),
                None,
            )),
            None => Err(ErrorData::new(ErrorCode::METHOD_NOT_FOUND, request.method, None)),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(resources::list(&self.hub, self.slot.id))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&self.hub, self.slot.id, &request.uri).await.map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        resources::parse(&request.uri)?;
        self.hub.subscribe(&self.slot, &request.uri, true).await.map_err(unsaved)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.hub.subscribe(&self.slot, &request.uri, false).await.map_err(unsaved)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.set_log_level(request.level);
        Ok(())
    }
}

/// The handler rmcp runs for requests the session layer does not answer itself. It is
/// stateless: each request names its session with `Mcp-Session-Id`, which rmcp passes
/// along in the request's extensions.
pub struct Gateway {
    hub: Arc<Hub>,
    surface: Arc<Surface>,
    tasks: Arc<Tasks>,
}

impl Gateway {
    /// A gateway to `hub`'s sessions, running `send_message_and_wait` as one of `tasks`
    /// for a client with the tasks extension.
    pub fn new(hub: Arc<Hub>, surface: Arc<Surface>, tasks: Arc<Tasks>) -> Self {
        Gateway { hub, surface, tasks }
    }

    /// The view of the session this request belongs to.
    fn session(&self, context: &RequestContext<RoleServer>) -> Result<ChatServer, ErrorData> {
        let Some(id) = session_header(context) else {
            return Err(ErrorData::new(ErrorCode::METHOD_NOT_FOUND, NEEDS_A_SESSION, None));
        };
        let slot = Some(id)
            .and_then(|id| self.hub.slot_by_mcp(id))
            .filter(|slot| !slot.is_sessionless())
            .ok_or_else(|| ErrorData::invalid_request("unknown session: initialize a new one", None))?;
        Ok(ChatServer::new(self.hub.clone(), slot, self.surface.clone()))
    }

    /// A tool call without an MCP session (2026-07-28): the session is the one its
    /// `handle` names, or, for a binding tool called without one, a new session-less one
    /// (closed again if the call fails, so a refused call leaves nothing behind).
    async fn call_sessionless(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = tools::static_name(&request.name);
        if let Some(handle) = era::peek_handle(request.arguments.as_ref()) {
            let Some(slot) = self.hub.slot_by_mcp(handle).filter(|slot| slot.is_sessionless()) else {
                return Ok(CallToolResponse::Complete(era::unknown_handle(tool)));
            };
            let server = ChatServer::new(self.hub.clone(), slot, self.surface.clone());
            if self.tasks.wanted(tool, &context) {
                return Ok(self.tasks.spawn(server, request, context));
            }
            return server.call_tool(request, context).await;
        }
        if !era::BINDING_TOOLS.contains(&tool) {
            if self.surface.tools.get(&request.name).is_none() {
                // Unknown tools get the same JSON-RPC error as in a session.
                let message = format!(
                    "unknown tool `{}`; the tools are: {}",
                    request.name,
                    tools::TOOL_NAMES.join(", ")
                );
                return Err(ErrorData::invalid_params(message, None));
            }
            return Ok(CallToolResponse::Complete(era::missing_handle(tool)));
        }
        let address = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| session::peer_address(&p.extensions));
        let slot = self.hub.open_sessionless(address).await.map_err(|refused| {
            tracing::warn!(reason = %refused, "refusing a new session-less session");
            ErrorData::new(ErrorCode(-32000), refused.to_string(), None)
        })?;
        let server = ChatServer::new(self.hub.clone(), slot.clone(), self.surface.clone());
        let result = server.call_tool(request, context).await;
        let bound = matches!(&result, Ok(CallToolResponse::Complete(r)) if r.is_error != Some(true));
        if !bound {
            self.hub.end_session(&slot, SessionEnd::Closed).await;
        }
        result
    }

    /// The session-less session whose inbox `uri` names.
    fn inbox_session(&self, uri: &str) -> Option<Arc<Slot>> {
        resources::inbox_secret(uri).and_then(|secret| self.hub.slot_by_inbox(secret))
    }
}

/// The error of a request that only a 2025 session can make (`logging/setLevel`, a custom
/// method), made without one.
const NEEDS_A_SESSION: &str = "this method needs an MCP session (a 2025 revision: initialize \
first). Without one (protocol 2026-07-28) there are tools (pass `handle`), resources/read of your \
inbox_uri, and subscriptions/listen on it";

/// The `Mcp-Session-Id` of the request, if it has one (then it is of a 2025 revision).
fn session_header(context: &RequestContext<RoleServer>) -> Option<&str> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-session-id"))
        .and_then(|id| id.to_str().ok())
}

#[tool_handler(router = self.surface.tools)]
impl ServerHandler for Gateway {
    /// What `server/discover` announces: as at `initialize`, plus the tasks extension,
    /// which only session-less requests use.
    fn get_info(&self) -> ServerInfo {
        let mut info = server_info();
        info.capabilities
            .extensions
            .get_or_insert_with(Default::default)
            .insert(rmcp::model::TASKS_EXTENSION_ID.to_owned(), JsonObject::new());
        info
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&ALL_VERSIONS)
    }

    /// `subscriptions/listen`: the inbox URIs of session-less sessions
    /// (`resourceSubscriptions`); nothing else is pushed without a session.
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.resource_subscriptions = requested
            .resource_subscriptions
            .as_ref()
            .map(|uris| uris.iter().filter(|uri| self.inbox_session(uri).is_some()).cloned().collect());
        Some(accepted)
    }

    /// One listen stream: `notifications/resources/updated` for an inbox each time its
    /// session gets an event, until the client closes the stream, every session it
    /// watches ends, or the server stops. While it is open, its sessions are held (their
    /// identities are online).
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let uris = context.accepted().resource_subscriptions.clone().unwrap_or_default();
        let mut holds = Vec::new();
        let mut feeds = Vec::new();
        let mut endings = Vec::new();
        for uri in uris {
            let Some(slot) = self.inbox_session(&uri) else { continue };
            let mut rx = slot.listen();
            // Events that came before the stream (between the binding call and now) are
            // news too: one update says "fetch" for all of them.
            if self.hub.pending_events(slot.id) > 0
                && context.sink().notify_resource_updated(uri.clone()).await.is_err()
            {
                return Ok(());
            }
            feeds.push(
                futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(move |()| uri.clone()).boxed(),
            );
            endings.push(slot.ending().clone());
            holds.push(self.hub.holding(&slot, Hold::Stream));
        }
        if feeds.is_empty() {
            return Ok(());
        }
        let mut updates = futures::stream::select_all(feeds);
        let all_ended = futures::future::join_all(endings.iter().map(|e| e.cancelled()));
        tokio::pin!(all_ended);
        loop {
            tokio::select! {
                update = updates.next() => {
                    let Some(uri) = update else { break };
                    if context.sink().notify_resource_updated(uri).await.is_err() {
                        break;
                    }
                }
                () = context.cancelled() => break,
                _ = &mut all_ended => break,
                () = self.hub.shutdown_token().cancelled() => break,
            }
        }
        drop(holds);
        Ok(())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(self.tasks.manager().get_task(&request.task_id)?))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.manager().update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.manager().cancel_task(&request.task_id)
    }

    async fn initialize(
        &self,
        _request: InitializeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        Err(ErrorData::invalid_request("this session is already initialized", None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if session_header(&context).is_none() {
            return self.call_sessionless(request, context).await;
        }
        let server = self.session(&context)?;
        // Only calls the direct path leaves to rmcp get here (those with a per-request
        // protocol version). Blocking tools still end early on `notifications/cancelled`,
        // which arrives as its own POST: the session layer cancels the token registered
        // here. rmcp answers whatever the tool returns then; the direct path sends nothing.
        let _in_flight = server.slot.track_request(context.id.to_string(), context.ct.clone());
        server.call_tool(request, context).await
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        self.session(&context)?.on_custom_request(request, context).await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        if session_header(&context).is_none() {
            // Without a session there is no caller to list for: each inbox URI comes with
            // the binding call's result, and rooms are read with get_history.
            return Ok(ListResourcesResult::default());
        }
        self.session(&context)?.list_resources(request, context).await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        if session_header(&context).is_none() {
            // Room transcripts are resources of a session; without one, get_history.
            return Ok(ListResourceTemplatesResult::default());
        }
        self.session(&context)?.list_resource_templates(request, context).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if session_header(&context).is_none() {
            let Some(slot) = self.inbox_session(&request.uri) else {
                return Err(resources::sessionless_not_found(&request.uri));
            };
            self.hub.touch(&slot);
            let inbox = resources::ChatResource::Inbox;
            return resources::read_parsed(&self.hub, slot.id, inbox, &request.uri).await.map(Into::into);
        }
        self.session(&context)?.read_resource(request, context).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session(&context)?.subscribe(request, context).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session(&context)?.unsubscribe(request, context).await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session(&context)?.set_level(request, context).await
    }
}

/// A request the store did not take, as a JSON-RPC error (nothing of it happened).
fn unsaved(unsaved: crate::state::journal::Unsaved) -> ErrorData {
    ErrorData::internal_error(unsaved.to_string(), None)
}
