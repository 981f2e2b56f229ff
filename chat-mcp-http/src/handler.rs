//! The MCP request handlers.
//!
//! [`ChatServer`] is one session's handler: the tools (see `tools.rs`), resources,
//! logging (see `logging.rs`), and tool dispatch with argument checks and metrics. It is a
//! cheap view (the hub, the session's slot, the shared [`Surface`]) made per request.
//! [`Gateway`] is what rmcp runs for the requests the session layer (`session.rs`) hands
//! it: rmcp serves those statelessly, so the gateway finds the session from the request's
//! `Mcp-Session-Id` and delegates to its view.
// resources/subscribe and logging are "legacy-only" in rmcp 3.9 but current for 2025-11-25.
#![allow(deprecated)]

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, ErrorCode, Implementation,
    InitializeRequestParams, InitializeResult, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerInfo, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::arguments;
use crate::jsonrpc;
use crate::logging;
use crate::resources;
use crate::state::hub::Hub;
use crate::state::slot::Slot;
use crate::tools;

/// The protocol version this server prefers: the newest that still has the `initialize`
/// handshake and therefore sessions, a GET stream and server-pushed notifications.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// Versions a client may negotiate. 2026-07-28 is left out on purpose: it has no
/// sessions, so a client asking for it is offered 2025-11-25 instead.
pub const SUPPORTED_VERSIONS: [ProtocolVersion; 3] =
    [ProtocolVersion::V_2025_03_26, ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25];

/// The `instructions` of the initialize result: how a model uses this server.
pub const INSTRUCTIONS: &str = "\
mcp-chat connects you with people or other agents.
- Random 1-on-1 chat: call enter_queue (optional display_name, interests). When matched you get a chatroom.found event with a room_id; talk with send_message {room_id, message}; leave_chat ends it (requeue: true finds the next partner).
- Agent messaging: call checkin_client {client_id}; send_message {recipient_id, message} leaves a message (kept while they are offline), send_message_and_wait blocks until they reply, get_messages reads your mailbox, list_clients shows who is known.
- Events (matches, messages, partner leaving, typing) are pushed as notifications, but your client may not show them: call wait_for_events (blocks up to 25 s) and pass after_seq = the next_after_seq of the previous result. Every result says how many events are pending.
- Keep the resume_token you are given: an id is yours only with it. After a disconnect or a restart, resume_session {user_id, resume_token} (or checkin_client / enter_queue with resume_token) restores your identity, mailbox and room.";

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
        Arc::new(Surface { tools: Self::tool_router(), levels: logging::Levels::default() })
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
        let result = match arguments::check(tool, &definition.input_schema, request.arguments.take()) {
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
        };
        let is_error = match &result {
            Ok(CallToolResponse::Complete(r)) => r.is_error == Some(true),
            Ok(_) => false,
            Err(_) => true,
        };
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
}

impl Gateway {
    /// A gateway to `hub`'s sessions.
    pub fn new(hub: Arc<Hub>, surface: Arc<Surface>) -> Self {
        Gateway { hub, surface }
    }

    /// The view of the session this request belongs to.
    fn session(&self, context: &RequestContext<RoleServer>) -> Result<ChatServer, ErrorData> {
        let slot = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|id| id.to_str().ok())
            .and_then(|id| self.hub.slot_by_mcp(id))
            .ok_or_else(|| ErrorData::invalid_request("unknown session: initialize a new one", None))?;
        Ok(ChatServer::new(self.hub.clone(), slot, self.surface.clone()))
    }
}

#[tool_handler(router = self.surface.tools)]
impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerInfo {
        server_info()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&SUPPORTED_VERSIONS)
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
        self.session(&context)?.list_resources(request, context).await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.session(&context)?.list_resource_templates(request, context).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
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
