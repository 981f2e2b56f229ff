//! The MCP tools: thin translations between tool arguments and core commands.
//!
//! Every result carries markdown text for a model and the same data as
//! `structuredContent`, plus `pending_events`, the caller's unacknowledged event count.
//! Core refusals become `isError` results whose text is the core's actionable message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::{
    ActAs, ChatError, Command, DirectMessage, EventsReply, Hold, Reply, SentDirectReply, SessionId,
};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde_json::{Value, json};

use crate::handler::ChatServer;
use crate::output;
use crate::params::{
    BlockPartnerArgs, CheckinArgs, EnterQueueArgs, GetHistoryArgs, GetMessagesArgs, LeaveChatArgs,
    ResumeArgs, SendAndWaitArgs, SendMessageArgs, SetTypingArgs, WaitForEventsArgs,
};
use crate::render;
use crate::resources;
use crate::state::clock;
use crate::state::journal::Unsaved;
use crate::tasks::TaskStatus;

/// Every tool name, for metric labels (`&'static str` keeps the metrics map cheap).
pub const TOOL_NAMES: [&str; 14] = [
    "enter_queue",
    "leave_queue",
    "send_message",
    "leave_chat",
    "set_typing",
    "block_partner",
    "get_history",
    "checkin_client",
    "list_clients",
    "get_messages",
    "send_message_and_wait",
    "get_my_identity",
    "resume_session",
    "wait_for_events",
];

/// The static name of a tool, or `"unknown"`.
pub fn static_name(name: &str) -> &'static str {
    TOOL_NAMES.iter().find(|n| **n == name).copied().unwrap_or("unknown")
}

/// A tool failure: a machine-readable code and the message shown to the model.
struct Failure {
    code: String,
    message: String,
}

impl From<ChatError> for Failure {
    fn from(error: ChatError) -> Self {
        Failure { code: error.code().into(), message: error.to_string() }
    }
}

/// A request the store did not take: nothing of it happened, and retrying is safe.
impl From<Unsaved> for Failure {
    fn from(unsaved: Unsaved) -> Self {
        Failure { code: "store_unavailable".into(), message: unsaved.to_string() }
    }
}

/// The code of a wrong resume token ([`ChatError::BadResumeToken`]).
const BAD_RESUME_TOKEN: &str = "bad_resume_token";

impl Failure {
    fn invalid(message: impl Into<String>) -> Self {
        Failure { code: "invalid_arguments".into(), message: message.into() }
    }
}

// The `structuredContent` of every result is built by the `*_data` functions below, so
// that `output.rs` can check each shape against the tool's output schema.

/// A successful result's `structuredContent`: `data` plus `pending_events`.
pub(crate) fn with_pending(mut data: Value, pending: usize) -> Value {
    if let Value::Object(map) = &mut data {
        map.insert("pending_events".into(), json!(pending));
    }
    data
}

/// A refused call's `structuredContent`.
pub(crate) fn error_data(code: &str, message: &str, pending: usize) -> Value {
    json!({ "error": code, "message": message, "pending_events": pending })
}

/// The `structuredContent` of a core reply, with an implicit check-in's data (its resume
/// token) merged in.
pub(crate) fn reply_data(reply: &Reply, checkin: Option<Reply>, pending: usize) -> Value {
    let mut data = to_json(reply);
    if let (Value::Object(map), Some(Reply::CheckedIn(c))) = (&mut data, checkin) {
        map.insert("checked_in".into(), to_json(&c));
    }
    with_pending(data, pending)
}

/// The `structuredContent` of `wait_for_events`.
pub(crate) fn events_data(reply: &EventsReply, pending: usize) -> Value {
    let mut data = to_json(reply);
    if let Value::Object(map) = &mut data {
        map.insert("timed_out".into(), json!(reply.events.is_empty()));
    }
    with_pending(data, pending)
}

/// The `structuredContent` of `send_message_and_wait`: `reply` is `None` on a timeout.
pub(crate) fn wait_data(
    sent: &SentDirectReply,
    reply: Option<&DirectMessage>,
    waited: Duration,
    checkin: Option<Reply>,
    pending: usize,
) -> Value {
    let mut data = json!({
        "status": if reply.is_some() { "replied" } else { "timeout" },
        "sent": sent,
        "reply": reply,
        "waited_ms": u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
    });
    if let (Value::Object(map), Some(Reply::CheckedIn(c))) = (&mut data, checkin) {
        map.insert("checked_in".into(), to_json(&c));
    }
    with_pending(data, pending)
}

/// A successful result: `text` (plus the pending footer) and `data`, which already holds
/// `pending_events`.
fn success(text: String, data: Value, pending: usize) -> CallToolResult {
    let mut result =
        CallToolResult::success(vec![ContentBlock::text(text + &render::pending_footer(pending))]);
    result.structured_content = Some(data);
    result
}

/// An `isError` result with the actionable message and `{error, message, pending_events}`.
fn failure(failure: Failure, pending: usize) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "Error: {}{}",
        failure.message,
        render::pending_footer(pending)
    ))]);
    result.structured_content = Some(error_data(&failure.code, &failure.message, pending));
    result
}

/// An `isError` result with `code` and the actionable `message`, for a call refused
/// before it reached the core (see `era.rs`).
pub(crate) fn refusal(code: &str, message: &str, pending: usize) -> CallToolResult {
    failure(Failure { code: code.into(), message: message.into() }, pending)
}

/// The `invalid_arguments` result for arguments refused before the tool ran (see
/// `arguments.rs`).
pub fn refuse_arguments(message: String, pending: usize) -> CallToolResult {
    failure(Failure::invalid(message), pending)
}

/// Rewrites rmcp's "failed to deserialize parameters" result into the standard error
/// shape, naming the required arguments.
pub fn explain_argument_error(
    result: &mut CallToolResult,
    tool: &str,
    required: Option<Value>,
    pending: usize,
) {
    let detail = result.content.iter().find_map(|c| c.as_text().map(|t| t.text.clone())).unwrap_or_default();
    let detail = detail.trim_start_matches("failed to deserialize parameters:").trim();
    let required = match required {
        Some(Value::Array(names)) if !names.is_empty() => {
            let names: Vec<_> = names.iter().filter_map(Value::as_str).map(|n| format!("`{n}`")).collect();
            format!(" Required: {}.", names.join(", "))
        }
        _ => String::new(),
    };
    let message = format!("invalid arguments for {tool}: {detail}.{required} See the tool's input schema.");
    *result = failure(Failure::invalid(message), pending);
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| json!({ "serialization_error": e.to_string() }))
}

/// Treats `""` (which models often send for "no value") like an absent argument.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A wait timeout in seconds from the caller, defaulted and capped.
fn wait_timeout(given: Option<f64>, default: Duration, max: Duration) -> Result<Duration, Failure> {
    match given {
        None => Ok(default.min(max)),
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            Ok(Duration::from_secs_f64(secs.min(max.as_secs_f64())))
        }
        Some(secs) => Err(Failure::invalid(format!(
            "timeout must be a number of seconds from 0 to {}, got {secs}",
            max.as_secs()
        ))),
    }
}

/// A successful result with an implicit check-in's data (its resume token) merged in,
/// so it is not lost.
fn with_checkin(reply: &Reply, checkin: Option<Reply>, pending: usize) -> CallToolResult {
    success(render::reply(reply, clock::now()), reply_data(reply, checkin, pending), pending)
}

/// Reports how a waiting tool is getting on: `notifications/progress` when the caller asked
/// for progress, and the status message of the task it runs in, if any (see `tasks.rs`).
struct Progress {
    token: Option<ProgressToken>,
    task: Option<TaskStatus>,
    started: Instant,
    total: Duration,
}

impl Progress {
    fn new(context: &RequestContext<RoleServer>, total: Duration) -> Self {
        Progress {
            token: context.meta.get_progress_token(),
            task: context.extensions.get::<TaskStatus>().cloned(),
            started: Instant::now(),
            total,
        }
    }

    /// Says what the tool now waits for (a task's status message).
    fn start(&self, what: &str) {
        if let Some(task) = &self.task {
            task.say(what);
        }
    }

    async fn tick(&self, server: &ChatServer, context: &RequestContext<RoleServer>, what: &str) {
        let elapsed = self.started.elapsed().as_secs_f64().floor();
        let message = format!("{what} ({elapsed:.0}s of {:.0}s)", self.total.as_secs_f64());
        if let Some(task) = &self.task {
            task.say(message.clone());
        }
        let Some(token) = self.token.clone() else { return };
        let param = ProgressNotificationParam::new(token, elapsed)
            .with_total(self.total.as_secs_f64().ceil())
            .with_message(message);
        if context.peer.notify_progress(param).await.is_ok() {
            server.hub.metrics.progress_sent();
        }
    }
}

/// Why a wait ended.
enum Woken {
    /// Something may have arrived: check again.
    Event,
    /// The time is up.
    Timeout,
    /// The request was cancelled or the server is stopping.
    Cancelled,
}

impl ChatServer {
    fn session(&self) -> SessionId {
        self.slot.id
    }

    /// Runs `command` for this session, first checking in implicitly as `claimed` (the
    /// seed's `sender_id` / `client_id` arguments, which must match the session's identity
    /// or bind it). Returns the reply, the implicit check-in's reply (also when the command
    /// then failed: the session is checked in either way) and the pending count, all from
    /// one input.
    async fn run_as(
        &self,
        claimed: Option<&str>,
        field: &str,
        command: Result<Command, Failure>,
    ) -> (Result<Reply, Failure>, Option<Reply>, usize) {
        let session = self.session();
        let command = match command {
            Ok(command) => command,
            Err(f) => return (Err(f), None, self.hub.pending_events(session)),
        };
        let act_as = claimed.map(|id| ActAs { id: Arc::from(id), field: Arc::from(field) });
        match self.hub.command(session, command, act_as).await {
            Ok(answer) => {
                self.log_checkin(answer.checkin.as_ref(), field);
                (answer.reply.map_err(Failure::from), answer.checkin, answer.pending)
            }
            Err(unsaved) => (Err(unsaved.into()), None, self.hub.pending_events(session)),
        }
    }

    /// One command for this session: its reply and the pending count after it.
    async fn call(&self, command: Command) -> (Result<Reply, Failure>, usize) {
        let session = self.session();
        match self.hub.command(session, command, None).await {
            Ok(answer) => (answer.reply.map_err(Failure::from), answer.pending),
            Err(unsaved) => (Err(unsaved.into()), self.hub.pending_events(session)),
        }
    }

    /// Tells the session's log that `field` checked it in (the `info` level of
    /// `logging.rs`). The resume token stays out of the log, which hosts may keep: the
    /// result's `checked_in` has it, and `get_my_identity` shows it (also after the command
    /// itself failed).
    fn log_checkin(&self, checkin: Option<&Reply>, field: &str) {
        if let Some(Reply::CheckedIn(c)) = checkin {
            let message = format!(
                "{field} checked this session in as client `{}`; get_my_identity shows its resume token",
                c.client_id
            );
            self.log_info(json!({ "message": message, "client_id": c.client_id }));
        }
    }

    /// Runs one command and renders the result the standard way. A command that presents
    /// a resume token is first checked against its address's budget of wrong tokens (see
    /// `state/guesses.rs`), and a wrong token spends from it.
    async fn run(&self, command: Command) -> CallToolResult {
        let presents_token = matches!(
            &command,
            Command::Resume { .. }
                | Command::Checkin { resume_token: Some(_), .. }
                | Command::EnterQueue { resume_token: Some(_), .. }
        );
        let address = self.slot.address();
        if presents_token && let Some(wait) = self.hub.guesses.refused(address) {
            let (max, window) = self.hub.guesses.limit();
            let message = format!(
                "too many wrong resume tokens from your address (at most {max} per {} s); retry in {} s",
                window.as_secs_f64(),
                wait.as_secs_f64().ceil()
            );
            let refusal = Failure { code: "too_many_bad_tokens".into(), message };
            return failure(refusal, self.hub.pending_events(self.session()));
        }
        let (result, pending) = self.call(command).await;
        if presents_token && matches!(&result, Err(f) if f.code == BAD_RESUME_TOKEN) {
            self.hub.guesses.failed(address);
        }
        self.finish(result, pending)
    }

    fn finish(&self, result: Result<Reply, Failure>, pending: usize) -> CallToolResult {
        match result {
            Ok(reply) => with_checkin(&reply, None, pending),
            Err(f) => failure(f, pending),
        }
    }

    /// Waits until the session gets an event, `deadline` passes, the progress interval
    /// elapses (then sends progress) or the call is cancelled.
    async fn wait(
        &self,
        watch: &mut tokio::sync::watch::Receiver<u64>,
        deadline: tokio::time::Instant,
        progress: &Progress,
        context: &RequestContext<RoleServer>,
        what: &str,
    ) -> Woken {
        let interval = self.hub.config.progress_interval;
        // A client blocked in a wait is there, whatever its other connections do.
        let _alive = self.hub.holding(&self.slot, Hold::Request);
        loop {
            let next_progress = tokio::time::Instant::now() + interval;
            tokio::select! {
                changed = watch.changed() => {
                    return if changed.is_ok() { Woken::Event } else { Woken::Cancelled };
                }
                () = tokio::time::sleep_until(deadline) => return Woken::Timeout,
                () = tokio::time::sleep_until(next_progress), if next_progress < deadline => {
                    progress.tick(self, context, what).await;
                }
                () = context.ct.cancelled() => return Woken::Cancelled,
                () = self.slot.ending().cancelled() => return Woken::Cancelled,
                () = self.hub.shutdown_token().cancelled() => return Woken::Cancelled,
            }
        }
    }
}

#[tool_router(vis = "pub(crate)")]
impl ChatServer {
    #[tool(
        name = "enter_queue",
        output_schema = output::schema::<output::EnterQueue>(),
        title = "Find a chat partner",
        annotations(
            title = "Find a chat partner",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "Join the chat-roulette queue to be paired with a random partner for a 1-on-1 text chat. \
Returns your user_id, a resume_token (keep it) and either your queue position or, if someone was waiting, \
the new room. When a match is made you get a `chatroom.found` event with the room_id (also via wait_for_events). \
Optional: display_name shown to your partner, interests to be matched on, user_id to pick your id."
    )]
    async fn enter_queue(&self, Parameters(args): Parameters<EnterQueueArgs>) -> CallToolResult {
        self.run(Command::EnterQueue {
            user_id: present(args.user_id),
            display_name: present(args.display_name),
            interests: args.interests.unwrap_or_default(),
            resume_token: present(args.resume_token),
        })
        .await
    }

    #[tool(
        name = "leave_queue",
        output_schema = output::schema::<output::LeaveQueue>(),
        title = "Leave the queue",
        annotations(
            title = "Leave the queue",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "Stop waiting for a chat partner (leave the roulette queue)."
    )]
    async fn leave_queue(&self) -> CallToolResult {
        self.run(Command::LeaveQueue).await
    }

    #[tool(
        name = "send_message",
        output_schema = output::schema::<output::SendMessage>(),
        title = "Send a message",
        annotations(
            title = "Send a message",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        ),
        description = "Send a message. With room_id: to your chat-roulette partner in that room (they get a \
`message.received` event). With recipient_id: a direct message to another client (agent messaging); it waits in \
their mailbox if they are offline and expires unread after a few minutes (you then get `message.expired`). \
Give exactly one of room_id or recipient_id."
    )]
    async fn send_message(&self, Parameters(args): Parameters<SendMessageArgs>) -> CallToolResult {
        let session = self.session();
        let target = match (present(args.room_id), present(args.recipient_id)) {
            (Some(room_id), None) => Ok((Some(room_id), None)),
            (None, Some(recipient_id)) => Ok((None, Some(recipient_id))),
            (Some(_), Some(_)) => Err(Failure::invalid(
                "give either room_id (message your chat partner) or recipient_id (direct message to a client), not both",
            )),
            (None, None) => Err(Failure::invalid(
                "give room_id (to message your chat partner) or recipient_id (to message a client directly)",
            )),
        };
        let key = present(args.client_message_id);
        let command = target.map(|(room_id, recipient_id)| match (room_id, recipient_id) {
            (Some(room_id), _) => {
                Command::SendRoom { room_id, message: args.message, client_message_id: key }
            }
            (None, recipient) => Command::SendDirect {
                recipient_id: recipient.unwrap_or_default(),
                message: args.message,
                client_message_id: key,
            },
        });
        let sender = present(args.sender_id);
        let (result, checkin, pending) = self.run_as(sender.as_deref(), "sender_id", command).await;
        match result {
            Ok(reply) => {
                self.hub.metrics.message_relayed();
                if let Reply::SentRoom(sent) = &reply {
                    self.hub.touch_resource(session, resources::room_uri(&sent.room_id));
                }
                with_checkin(&reply, checkin, pending)
            }
            Err(f) => failure(f, pending),
        }
    }

    #[tool(
        name = "leave_chat",
        output_schema = output::schema::<output::LeaveChat>(),
        title = "Leave a chat",
        annotations(
            title = "Leave a chat",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "End the chat in a room; your partner gets `partner.disconnected` with reason \"left\". \
Set requeue: true to go straight back into the queue for a new partner."
    )]
    async fn leave_chat(&self, Parameters(args): Parameters<LeaveChatArgs>) -> CallToolResult {
        self.run(Command::LeaveChat { room_id: args.room_id, requeue: args.requeue.unwrap_or(false) }).await
    }

    #[tool(
        name = "set_typing",
        output_schema = output::schema::<output::SetTyping>(),
        title = "Show or clear typing",
        annotations(
            title = "Show or clear typing",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "Show (typing: true, the default) or clear (typing: false) a typing indicator. With room_id: \
to your chat-roulette partner, who gets a `partner.typing` event. With recipient_id: to a client you are writing a \
direct message to, who gets a `direct.typing` event while online. Give exactly one of room_id or recipient_id. Only \
changes are sent; repeat typing: true every few seconds while composing, since the indicator clears itself after a \
few seconds without a refresh. Sending the message ends it."
    )]
    async fn set_typing(&self, Parameters(args): Parameters<SetTypingArgs>) -> CallToolResult {
        let typing = args.typing.unwrap_or(true);
        let command = match (present(args.room_id), present(args.recipient_id)) {
            (Some(room_id), None) => Command::SetTyping { room_id, typing },
            (None, Some(recipient_id)) => Command::SetDirectTyping { recipient_id, typing },
            (Some(_), Some(_)) => {
                return failure(
                    Failure::invalid(
                        "give either room_id (typing to your chat partner) or recipient_id (typing a direct message to a client), not both",
                    ),
                    self.hub.pending_events(self.session()),
                );
            }
            (None, None) => {
                return failure(
                    Failure::invalid(
                        "give room_id (typing to your chat partner) or recipient_id (typing a direct message to a client)",
                    ),
                    self.hub.pending_events(self.session()),
                );
            }
        };
        self.run(command).await
    }

    #[tool(
        name = "block_partner",
        output_schema = output::schema::<output::BlockPartner>(),
        title = "Block and report partner",
        annotations(
            title = "Block and report partner",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        ),
        description = "End the chat, report your partner for moderation and never be matched with them again. \
Use for abuse or spam; for a normal goodbye use leave_chat."
    )]
    async fn block_partner(&self, Parameters(args): Parameters<BlockPartnerArgs>) -> CallToolResult {
        self.run(Command::BlockPartner { room_id: args.room_id, reason: present(args.reason) }).await
    }

    #[tool(
        name = "get_history",
        output_schema = output::schema::<output::GetHistory>(),
        title = "Read a room's history",
        annotations(
            title = "Read a room's history",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "Read the recent messages of a chat room you are in (or were in, for a while after it ended), \
oldest first."
    )]
    async fn get_history(&self, Parameters(args): Parameters<GetHistoryArgs>) -> CallToolResult {
        self.run(Command::History { room_id: args.room_id }).await
    }

    #[tool(
        name = "checkin_client",
        output_schema = output::schema::<output::CheckinClient>(),
        title = "Check in as a client",
        annotations(
            title = "Check in as a client",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "Check in as a named client for agent-to-agent messaging (e.g. client_id \"frontend-ide\"). \
Others can then message you by that id; messages sent while you were away are waiting (get_messages). Returns a \
resume_token; keep it."
    )]
    async fn checkin_client(&self, Parameters(args): Parameters<CheckinArgs>) -> CallToolResult {
        // The core pushes mail that waited while the client was away when the identity binds.
        self.run(Command::Checkin {
            client_id: args.client_id,
            name: present(args.name),
            capabilities: args.capabilities.unwrap_or_default(),
            resume_token: present(args.resume_token),
        })
        .await
    }

    #[tool(
        name = "list_clients",
        output_schema = output::schema::<output::ListClients>(),
        title = "List clients",
        annotations(
            title = "List clients",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "List the clients that have checked in (online, reconnecting or offline), with names and \
capabilities, to find whom to message."
    )]
    async fn list_clients(&self) -> CallToolResult {
        self.run(Command::ListClients).await
    }

    #[tool(
        name = "get_messages",
        output_schema = output::schema::<output::GetMessages>(),
        title = "Read direct messages",
        annotations(
            title = "Read direct messages",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        ),
        description = "Read and remove the direct messages waiting in your mailbox, oldest first (peek: true to \
leave them there). Reply with send_message {recipient_id: <their id>}."
    )]
    async fn get_messages(&self, Parameters(args): Parameters<GetMessagesArgs>) -> CallToolResult {
        let claimed = present(args.client_id);
        let command = if args.peek.unwrap_or(false) {
            Command::PeekMessages
        } else {
            Command::GetMessages { limit: args.limit }
        };
        let (result, checkin, pending) = self.run_as(claimed.as_deref(), "client_id", Ok(command)).await;
        match result {
            Ok(reply) => with_checkin(&reply, checkin, pending),
            Err(f) => failure(f, pending),
        }
    }

    #[tool(
        name = "send_message_and_wait",
        output_schema = output::schema::<output::SendAndWait>(),
        title = "Send and wait for the reply",
        annotations(
            title = "Send and wait for the reply",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        ),
        description = "Send a direct message to a client and wait for their reply (a conversation turn). Returns \
their first message sent after yours, or reports a timeout after `timeout` seconds (default 60); your message then \
stays in their mailbox and a later reply arrives as an event or via get_messages. Sends progress notifications \
while waiting if you pass a progressToken."
    )]
    async fn send_message_and_wait(
        &self,
        Parameters(args): Parameters<SendAndWaitArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let session = self.session();
        let config = &self.hub.config;
        let timeout = match wait_timeout(args.timeout, config.send_wait_default, config.send_wait_max) {
            Ok(t) => t,
            Err(f) => return failure(f, self.hub.pending_events(session)),
        };
        let sender = present(args.sender_id);
        let recipient = args.recipient_id;
        // Subscribe before sending so a reply racing the send still wakes us.
        let mut watch = self.slot.watch();
        let command = Command::SendDirect {
            recipient_id: recipient.clone(),
            message: args.message,
            client_message_id: present(args.client_message_id),
        };
        let act_as = sender.map(|id| ActAs { id: Arc::from(id), field: Arc::from("sender_id") });
        let answer = match self.hub.command(session, command, act_as).await {
            Ok(answer) => answer,
            Err(unsaved) => return failure(unsaved.into(), self.hub.pending_events(session)),
        };
        self.log_checkin(answer.checkin.as_ref(), "sender_id");
        let (checkin, pending, cursor) = (answer.checkin, answer.pending, answer.cursor);
        let sent = answer.reply.map(|reply| (reply, cursor)).map_err(Failure::from);
        let (sent, cursor) = match sent {
            Ok((Reply::SentDirect(sent), cursor)) => (sent, cursor),
            Ok((other, _)) => return with_checkin(&other, checkin, pending),
            Err(f) => return failure(f, pending),
        };
        self.hub.metrics.message_relayed();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let progress = Progress::new(&context, timeout);
        let what = format!("waiting for a reply from {recipient}");
        progress.start(&what);
        loop {
            let take = Command::TakeReply { from: recipient.clone(), after_seq: cursor };
            let (result, pending) = self.call(take).await;
            let reply = match result {
                Ok(Reply::TakenReply(taken)) => taken.message,
                Ok(_) => None,
                Err(f) => return failure(f, pending),
            };
            let waited = started.elapsed();
            let now = clock::now();
            if let Some(message) = reply {
                let text = format!(
                    "{}\n\n**Reply from {}** (`{}`, after {:.1}s):\n{}",
                    render::sent_direct(&sent, now),
                    message.from_name,
                    message.from,
                    waited.as_secs_f64(),
                    message.message.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")
                );
                let data = wait_data(&sent, Some(&message), waited, checkin, pending);
                return success(text, data, pending);
            }
            match self.wait(&mut watch, deadline, &progress, &context, &what).await {
                Woken::Event => continue,
                Woken::Timeout | Woken::Cancelled => {
                    // One last look: the reply may have landed just now.
                    let take = Command::TakeReply { from: recipient.clone(), after_seq: cursor };
                    if let (Ok(Reply::TakenReply(taken)), pending) = self.call(take).await
                        && let Some(message) = taken.message
                    {
                        let data = wait_data(&sent, Some(&message), started.elapsed(), checkin, pending);
                        let text = format!(
                            "**Reply from {}** (`{}`):\n> {}",
                            message.from_name, message.from, message.message
                        );
                        return success(text, data, pending);
                    }
                    let text = format!(
                        "{}\n\nNo reply from `{recipient}` within {}. Your message stays in their mailbox; their reply \
will arrive as a `message.received` event (see `wait_for_events`) or via `get_messages`.",
                        render::sent_direct(&sent, now),
                        render::seconds(timeout)
                    );
                    let pending = self.hub.pending_events(session);
                    return success(text, wait_data(&sent, None, waited, checkin, pending), pending);
                }
            }
        }
    }

    #[tool(
        name = "get_my_identity",
        output_schema = output::schema::<output::Identity>(),
        title = "Show my identity",
        annotations(
            title = "Show my identity",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "Show who this session is (user/client id, display name, resume token), whether you are \
queued or chatting (and with whom), and how many events and direct messages are waiting."
    )]
    async fn get_my_identity(&self) -> CallToolResult {
        self.run(Command::Identity).await
    }

    #[tool(
        name = "resume_session",
        output_schema = output::schema::<output::Identity>(),
        title = "Resume an identity",
        annotations(
            title = "Resume an identity",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "After a disconnect or in a new session: take back your identity (user_id or client_id) \
with the resume_token you were given. Your room, queue place and unread events are kept if you return within \
the reconnect grace (30 s by default). Then call wait_for_events to catch up."
    )]
    async fn resume_session(&self, Parameters(args): Parameters<ResumeArgs>) -> CallToolResult {
        self.run(Command::Resume { user_id: args.user_id, resume_token: args.resume_token }).await
    }

    #[tool(
        name = "wait_for_events",
        output_schema = output::schema::<output::WaitForEvents>(),
        title = "Wait for events",
        annotations(
            title = "Wait for events",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        description = "Fetch your events (chatroom.found, message.received, partner.disconnected, partner.typing, \
direct.typing, message.expired), waiting up to `timeout` seconds (default 25, max 50) until at least one exists. Pass after_seq = \
the seq of the newest event you have handled: events up to it are acknowledged and only newer ones returned. Without \
after_seq every unacknowledged event is returned. Use this in a loop when your client does not show notifications."
    )]
    async fn wait_for_events(
        &self,
        Parameters(args): Parameters<WaitForEventsArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let session = self.session();
        let config = &self.hub.config;
        let timeout = match wait_timeout(args.timeout, config.wait_default, config.wait_max) {
            Ok(t) => t,
            Err(f) => return failure(f, self.hub.pending_events(session)),
        };
        let mut watch = self.slot.watch();
        let deadline = tokio::time::Instant::now() + timeout;
        let progress = Progress::new(&context, timeout);
        let mut evicted = 0;
        loop {
            let command = Command::Events { after_seq: args.after_seq, limit: args.limit };
            let (result, pending) = self.call(command).await;
            let mut reply = match result {
                Ok(Reply::Events(reply)) => reply,
                Ok(other) => return self.finish(Ok(other), pending),
                Err(f) => return failure(f, pending),
            };
            evicted += reply.evicted;
            reply.evicted = evicted;
            let expired = tokio::time::Instant::now() >= deadline;
            if !reply.events.is_empty() || expired {
                if reply.evicted > 0 {
                    let message = format!(
                        "{} of your events were dropped because your inbox was full (it keeps {}); call \
wait_for_events more often",
                        reply.evicted, config.limits.event_buffer
                    );
                    self.log_warning(json!({ "message": message, "evicted": reply.evicted }));
                }
                let timed_out = (reply.events.is_empty() && !timeout.is_zero()).then_some(timeout);
                let data = events_data(&reply, pending);
                return success(render::events(&reply, timed_out, clock::now()), data, pending);
            }
            match self.wait(&mut watch, deadline, &progress, &context, "waiting for events").await {
                Woken::Event | Woken::Timeout => continue,
                Woken::Cancelled => {
                    // Nothing arrived (the events would have been returned above).
                    let data = events_data(&reply, pending);
                    return success("Stopped waiting (cancelled or server stopping).".into(), data, pending);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts_are_defaulted_capped_and_validated() {
        let (d, m) = (Duration::from_secs(25), Duration::from_secs(50));
        assert_eq!(wait_timeout(None, d, m).ok(), Some(d));
        assert_eq!(wait_timeout(Some(500.0), d, m).ok(), Some(m));
        assert_eq!(wait_timeout(Some(0.5), d, m).ok(), Some(Duration::from_millis(500)));
        assert!(wait_timeout(Some(-1.0), d, m).is_err());
    }

    #[test]
    fn tool_names_match_the_router() {
        let router = ChatServer::router();
        let mut listed: Vec<_> = router.tools.list_all().into_iter().map(|t| t.name.to_string()).collect();
        listed.sort();
        let mut expected: Vec<_> = TOOL_NAMES.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(listed, expected);
    }
}
