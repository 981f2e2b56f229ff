//! The `outputSchema` of every tool: JSON Schemas of the `structuredContent` each returns.
//!
//! The results themselves are chat-core's replies, serialized by serde and shaped in
//! `tools.rs` (plus `pending_events`, an implicit check-in, `timed_out`). The core has no
//! schema dependency and knows nothing of MCP, so the shapes are described here by
//! schema-only mirror types that derive [`JsonSchema`]; nothing ever builds them. Two
//! tests keep mirror and reality in step: this module's unit test serializes one of every
//! core reply and event (written field by field, so a new core field or variant does not
//! compile until it is described here) and validates it against a strict form of the
//! schema that refuses undeclared properties; `tests/tests/http_tool_metadata.rs` calls
//! every tool on the real server and validates each result.
//!
//! The shape of each schema, and why:
//! - The root is `{"type": "object", "anyOf": [<the result>, <the error>]}`. A refused
//!   call is an `isError` result whose `structuredContent` is `{error, message,
//!   pending_events}`, and clients that validate (the TypeScript SDK does, even for
//!   errors) must accept it. `type: object` is there because hosts on 2025-06-18 and
//!   2025-11-25 require an object schema at the root.
//! - Every object is flat: a variant repeats the fields it shares with another (through
//!   `#[serde(flatten)]` of plain structs, which schemars merges) instead of combining
//!   schemas with `allOf`, so each branch lists every property it may have.
//! - Properties that are omitted when empty are optional and never `null`; `null`
//!   appears only where the server really sends it (`reply` on a timeout).
//! - Extra properties are allowed, so a client that validates keeps working when a
//!   later server adds a field.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::JsonObject;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

/// The `outputSchema` of a tool whose successful results have the shape `T`.
pub fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let mut schema = rmcp::handler::server::tool::schema_for_output::<Output<T>>().as_ref().clone();
    schema.insert("type".into(), Value::from("object"));
    schema.insert(
        "description".into(),
        Value::from("The tool's result; when isError is true, {error, message, pending_events} instead."),
    );
    Arc::new(schema)
}

/// The `format`s schemars writes for Rust number types (`uint64`, `double`, ...): not JSON
/// Schema formats, so validators warn about each (ajv: "unknown format ignored"). The
/// ranges they imply are already in `minimum` / `maximum`.
const RUST_FORMATS: [&str; 12] = [
    "uint", "uint8", "uint16", "uint32", "uint64", "int", "int8", "int16", "int32", "int64", "float",
    "double",
];

/// `schema` without the Rust-only `format`s, at every depth.
pub fn portable(schema: &mut JsonObject) {
    if schema.get("format").and_then(Value::as_str).is_some_and(|f| RUST_FORMATS.contains(&f)) {
        schema.remove("format");
    }
    for value in schema.values_mut() {
        portable_value(value);
    }
}

fn portable_value(value: &mut Value) {
    match value {
        Value::Object(object) => portable(object),
        Value::Array(items) => items.iter_mut().for_each(portable_value),
        _ => {}
    }
}

/// A tool's `structuredContent`: its result, or the error of a refused call.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Output<T> {
    /// The result of a successful call.
    Ok(T),
    /// A refused call (`isError: true`).
    Err(ToolError),
}

/// A refused call.
#[derive(JsonSchema)]
pub struct ToolError {
    /// A stable code, e.g. `unknown_room` or `invalid_arguments` (docs/PROTOCOL.md lists them).
    pub error: String,
    /// What went wrong and what to do instead.
    pub message: String,
    /// Your unacknowledged events.
    pub pending_events: usize,
}

// ----- pieces shared by many results -----

/// A time: RFC 3339, UTC, milliseconds.
pub struct Timestamp;

impl JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 UTC time with milliseconds, e.g. 2026-11-21T15:45:03.606Z."
        })
    }
}

/// Your unacknowledged event count, on every result.
#[derive(JsonSchema)]
pub struct Pending {
    /// Your unacknowledged events; when it is not 0, call `wait_for_events`.
    pub pending_events: usize,
}

/// What a binding tool (`enter_queue`, `checkin_client`, `resume_session`) adds to its
/// result (see `era.rs`).
#[derive(JsonSchema)]
pub struct Binding {
    #[doc = "Your handle: pass it as `handle` to every tool when your client has no MCP session (protocol 2026-07-28); optional in a session. Keep it secret: it acts as you."]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub handle: Option<String>,
    #[doc = "Your inbox's URI: name it in `subscriptions/listen` (`resourceSubscriptions`) to get `notifications/resources/updated` for each new event, then fetch with `wait_for_events`, or read it."]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub inbox_uri: Option<String>,
}

/// Who someone is, as the other side sees them.
#[derive(JsonSchema)]
pub struct Partner {
    /// Their user id.
    pub user_id: String,
    /// Their display name.
    pub display_name: String,
}

/// Your place in the queue.
#[derive(JsonSchema)]
pub struct Place {
    /// 1 = next to be matched.
    pub position: usize,
    /// Everyone waiting.
    pub queue_length: usize,
    /// Estimated seconds until a match, from recent matches; absent without recent data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub estimated_wait_secs: Option<u64>,
}

/// A new room.
#[derive(JsonSchema)]
pub struct Match {
    /// The room; pass it to `send_message`.
    pub room_id: String,
    /// Who you are talking to.
    pub partner: Partner,
    /// Interests you both listed (empty when matched without one).
    pub shared_interests: Vec<String>,
}

/// Where you stand after (re)entering the queue.
#[derive(JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum QueueStatus {
    /// Nobody suitable was waiting: you are in the queue.
    Waiting {
        #[serde(flatten)]
        place: Place,
    },
    /// Someone was waiting: you are in a room with them.
    Matched {
        #[serde(flatten)]
        room: Match,
    },
}

/// You, as `enter_queue` bound or found you.
#[derive(JsonSchema)]
pub struct Queuer {
    /// Your user id.
    pub user_id: String,
    /// Your display name.
    pub display_name: String,
    /// Present only when this call bound the identity. Keep it for `resume_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub resume_token: Option<String>,
    /// Your interests, lowercased.
    pub interests: Vec<String>,
}

/// A client identity that was bound.
#[derive(JsonSchema)]
pub struct CheckedIn {
    /// The client id.
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// Present when this call bound the identity. Keep it for `resume_session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub resume_token: Option<String>,
    /// Unread direct messages waiting.
    pub pending_messages: usize,
}

/// An accepted direct message.
#[derive(JsonSchema)]
pub struct SentDirect {
    /// The recipient's client id.
    pub recipient_id: String,
    /// The new message's id.
    pub message_id: String,
    /// When the server accepted it.
    pub timestamp: Timestamp,
    /// When it expires if unread (you then get `message.expired`).
    pub expires_at: Timestamp,
    /// Whether the recipient has a live session (and was notified).
    pub recipient_online: bool,
}

/// A direct message from a mailbox.
#[derive(JsonSchema)]
pub struct DirectMessage {
    /// The event seq it arrived with.
    pub seq: u64,
    /// The message id.
    pub message_id: String,
    /// The sender's client id; reply with `send_message {recipient_id: from}`.
    pub from: String,
    /// The sender's name.
    pub from_name: String,
    /// The text.
    pub message: String,
    /// When it was sent.
    pub timestamp: Timestamp,
}

/// Why a room ended.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// `leave_chat`, `block_partner`, or the partner's session ended on purpose.
    Left,
    /// The partner's connection was lost and not resumed within the reconnect grace.
    Timeout,
    /// The server stopped.
    Shutdown,
}

// ----- one type per tool result -----

/// What `enter_queue` returns.
#[derive(JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnterQueue {
    /// Nobody suitable was waiting: you are in the queue.
    Waiting {
        #[serde(flatten)]
        you: Queuer,
        #[serde(flatten)]
        place: Place,
        #[serde(flatten)]
        binding: Binding,
        #[serde(flatten)]
        pending: Pending,
    },
    /// Someone was waiting: you are in a room with them (both get `chatroom.found`).
    Matched {
        #[serde(flatten)]
        you: Queuer,
        #[serde(flatten)]
        room: Match,
        #[serde(flatten)]
        binding: Binding,
        #[serde(flatten)]
        pending: Pending,
    },
}

/// What `leave_queue` returns.
#[derive(JsonSchema)]
pub struct LeaveQueue {
    /// Whether you were in the queue.
    pub was_queued: bool,
    #[serde(flatten)]
    pub pending: Pending,
}

/// What `send_message` returns: a room message or a direct message.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum SendMessage {
    /// Sent to your partner in a room.
    Room {
        /// The room.
        room_id: String,
        /// The new message's id.
        message_id: String,
        /// The message's position in the room, from 1.
        seq: u64,
        /// When the server accepted it.
        timestamp: Timestamp,
        /// Present when `sender_id` checked this session in first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "CheckedIn")]
        checked_in: Option<CheckedIn>,
        #[serde(flatten)]
        pending: Pending,
    },
    /// Left in a client's mailbox.
    Direct {
        #[serde(flatten)]
        sent: SentDirect,
        /// Present when `sender_id` checked this session in first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "CheckedIn")]
        checked_in: Option<CheckedIn>,
        #[serde(flatten)]
        pending: Pending,
    },
}

/// What `leave_chat` returns.
#[derive(JsonSchema)]
pub struct LeaveChat {
    /// The room you left.
    pub room_id: String,
    /// `false` if the room had already ended (your partner left first).
    pub was_active: bool,
    /// With `requeue: true`: where you stand in the queue now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "QueueStatus")]
    pub requeued: Option<QueueStatus>,
    #[serde(flatten)]
    pub pending: Pending,
}

/// What `set_typing` returns: for a room or for a direct message.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum SetTyping {
    /// Typing to your partner in a room.
    Room {
        /// The room.
        room_id: String,
        /// The state now set.
        typing: bool,
        /// Whether the partner was told (`false` when nothing changed).
        notified: bool,
        #[serde(flatten)]
        pending: Pending,
    },
    /// Typing a direct message to a client.
    Direct {
        /// The client written to.
        recipient_id: String,
        /// The state the recipient now sees: `false` also when they are offline (an
        /// indicator is not kept for later).
        typing: bool,
        /// Whether the recipient was told (`false` when nothing changed, or offline).
        notified: bool,
        #[serde(flatten)]
        pending: Pending,
    },
}

/// What `block_partner` returns.
#[derive(JsonSchema)]
pub struct BlockPartner {
    /// The room, now ended.
    pub room_id: String,
    /// Who was blocked and reported.
    pub blocked_user_id: String,
    #[serde(flatten)]
    pub pending: Pending,
}

/// One message of a room's history.
#[derive(JsonSchema)]
pub struct HistoryEntry {
    /// The message's position in the room, from 1.
    pub seq: u64,
    /// The message id.
    pub message_id: String,
    /// The sender's user id.
    pub from: String,
    /// The sender's display name.
    pub from_name: String,
    /// The text.
    pub message: String,
    /// When it was sent.
    pub timestamp: Timestamp,
}

/// What `get_history` returns.
#[derive(JsonSchema)]
pub struct GetHistory {
    /// The room.
    pub room_id: String,
    /// Whether the room is still going on.
    pub active: bool,
    /// Why it ended; present once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "DisconnectReason")]
    pub ended_reason: Option<DisconnectReason>,
    /// The other participant.
    pub partner: Partner,
    /// The newest messages, oldest first.
    pub messages: Vec<HistoryEntry>,
    /// Older messages that are no longer kept.
    pub omitted: u64,
    #[serde(flatten)]
    pub pending: Pending,
}

/// What `checkin_client` returns.
#[derive(JsonSchema)]
pub struct CheckinClient {
    #[serde(flatten)]
    pub client: CheckedIn,
    #[serde(flatten)]
    pub binding: Binding,
    #[serde(flatten)]
    pub pending: Pending,
}

/// A client's presence.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// A live session.
    Online,
    /// Its connection was lost; it may come back within the reconnect grace.
    Reconnecting,
    /// No session.
    Offline,
}

/// One checked-in client.
#[derive(JsonSchema)]
pub struct ClientSummary {
    /// The client id; message it with `send_message {recipient_id}`.
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// The capabilities it declared.
    pub capabilities: Vec<String>,
    /// Online, reconnecting or offline.
    pub status: Presence,
    /// When it was last active.
    pub last_seen: Timestamp,
}

/// What `list_clients` returns.
#[derive(JsonSchema)]
pub struct ListClients {
    /// The clients, sorted by id.
    pub clients: Vec<ClientSummary>,
    /// Clients beyond the listing limit.
    pub omitted: usize,
    #[serde(flatten)]
    pub pending: Pending,
}

/// What `get_messages` returns.
#[derive(JsonSchema)]
pub struct GetMessages {
    /// Your direct messages, oldest first.
    pub messages: Vec<DirectMessage>,
    /// Direct messages still waiting after this call.
    pub remaining: usize,
    /// Present when `client_id` checked this session in first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "CheckedIn")]
    pub checked_in: Option<CheckedIn>,
    #[serde(flatten)]
    pub pending: Pending,
}

/// What `send_message_and_wait` returns: the reply, or a timeout.
#[derive(JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SendAndWait {
    /// The recipient answered.
    Replied {
        /// The message you sent.
        sent: SentDirect,
        /// Their reply, taken from your mailbox.
        reply: DirectMessage,
        /// How long the call waited, in milliseconds.
        waited_ms: u64,
        /// Present when `sender_id` checked this session in first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "CheckedIn")]
        checked_in: Option<CheckedIn>,
        #[serde(flatten)]
        pending: Pending,
    },
    /// No reply in time. Your message stays in their mailbox; a later reply comes as
    /// `message.received`.
    Timeout {
        /// The message you sent.
        sent: SentDirect,
        /// Always `null`.
        reply: (),
        /// How long the call waited, in milliseconds.
        waited_ms: u64,
        /// Present when `sender_id` checked this session in first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "CheckedIn")]
        checked_in: Option<CheckedIn>,
        #[serde(flatten)]
        pending: Pending,
    },
}

/// Who a session is.
#[derive(JsonSchema)]
pub struct Who {
    /// Your user or client id; absent while the session has no identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub user_id: Option<String>,
    /// Your display name; absent while the session has no identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub display_name: Option<String>,
    /// Your resume token; absent while the session has no identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub resume_token: Option<String>,
    /// Whether you checked in for agent messaging.
    pub checked_in: bool,
}

/// A session's counters.
#[derive(JsonSchema)]
pub struct Counts {
    /// Your unacknowledged events.
    pub pending_events: usize,
    /// Your unread direct messages.
    pub pending_messages: usize,
    /// The seq of your newest event so far (0 = none).
    pub last_seq: u64,
}

/// What `get_my_identity` and `resume_session` return.
#[derive(JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Identity {
    /// Neither queued nor chatting (also a session without an identity).
    Idle {
        #[serde(flatten)]
        who: Who,
        #[serde(flatten)]
        binding: Binding,
        #[serde(flatten)]
        counts: Counts,
    },
    /// In the queue.
    Waiting {
        #[serde(flatten)]
        who: Who,
        #[serde(flatten)]
        binding: Binding,
        /// 1 = next to be matched.
        position: usize,
        #[serde(flatten)]
        counts: Counts,
    },
    /// In a room.
    Chatting {
        #[serde(flatten)]
        who: Who,
        #[serde(flatten)]
        binding: Binding,
        /// The room.
        room_id: String,
        /// Your partner.
        partner: Partner,
        #[serde(flatten)]
        counts: Counts,
    },
}

/// An event's sequence number.
#[derive(JsonSchema)]
pub struct Seq {
    /// Strictly increasing per participant, from 1; pass the newest you handled as
    /// `after_seq`.
    pub seq: u64,
}

/// An event, as pushed in a notification and returned by `wait_for_events`.
#[derive(JsonSchema)]
#[serde(tag = "type")]
pub enum Envelope {
    /// You were matched.
    #[serde(rename = "chatroom.found")]
    ChatroomFound {
        #[serde(flatten)]
        seq: Seq,
        #[serde(flatten)]
        room: Match,
    },
    /// A room message (with `room_id`) or a direct message (without).
    #[serde(rename = "message.received")]
    MessageReceived {
        #[serde(flatten)]
        seq: Seq,
        /// The room it was sent in; absent for a direct message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "String")]
        room_id: Option<String>,
        /// The message id.
        message_id: String,
        /// The sender's id.
        from: String,
        /// The sender's display name.
        from_name: String,
        /// The text.
        message: String,
        /// When the server accepted it.
        timestamp: Timestamp,
    },
    /// Your room ended.
    #[serde(rename = "partner.disconnected")]
    PartnerDisconnected {
        #[serde(flatten)]
        seq: Seq,
        /// The room that ended.
        room_id: String,
        /// Why.
        reason: DisconnectReason,
        /// Your messages that never reached the partner (reason `timeout`); absent when
        /// everything arrived.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        undelivered: Vec<String>,
    },
    /// Your partner's connection was lost; the room waits for them.
    #[serde(rename = "partner.reconnecting")]
    PartnerReconnecting {
        #[serde(flatten)]
        seq: Seq,
        /// The room.
        room_id: String,
        /// When the room ends unless they are back.
        reconnect_by: Timestamp,
    },
    /// Your partner is back after `partner.reconnecting`.
    #[serde(rename = "partner.reconnected")]
    PartnerReconnected {
        #[serde(flatten)]
        seq: Seq,
        /// The room.
        room_id: String,
    },
    /// Your partner started or stopped typing.
    #[serde(rename = "partner.typing")]
    PartnerTyping {
        #[serde(flatten)]
        seq: Seq,
        /// The room.
        room_id: String,
        /// `true` while they type.
        typing: bool,
    },
    /// A client started or stopped typing a direct message to you.
    #[serde(rename = "direct.typing")]
    DirectTyping {
        #[serde(flatten)]
        seq: Seq,
        /// The writer's client id.
        from: String,
        /// The writer's display name.
        from_name: String,
        /// `true` while they type; a direct message from them also ends it.
        typing: bool,
    },
    /// A direct message you sent expired unread and was dropped.
    #[serde(rename = "message.expired")]
    MessageExpired {
        #[serde(flatten)]
        seq: Seq,
        /// The message's id, as returned when you sent it.
        message_id: String,
        /// Who did not read it.
        recipient_id: String,
        /// The text, so you can send it again.
        message: String,
        /// When it was sent.
        sent_at: Timestamp,
        /// When it expired.
        expired_at: Timestamp,
    },
}

/// What `wait_for_events` returns.
#[derive(JsonSchema)]
pub struct WaitForEvents {
    /// Your events after the cursor, oldest first.
    pub events: Vec<Envelope>,
    /// The `after_seq` to pass next: the seq of the last event returned (or the cursor
    /// given, when none was). It acknowledges exactly what was returned, never events a
    /// `limit` cut off.
    pub next_after_seq: u64,
    /// The same value as `next_after_seq` (kept for older clients).
    pub last_seq: u64,
    /// Unacknowledged events left after this call, including those returned.
    pub pending: usize,
    /// Events dropped because your inbox overflowed, since the previous call.
    pub evicted: u64,
    /// `true` when nothing arrived in time (or the wait was cancelled).
    pub timed_out: bool,
    #[serde(flatten)]
    pub pending_events: Pending,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use chat_core::{
        ActivityState, BlockedReply, ChatroomFound, CheckedInReply, ClientSummary, ClientsReply,
        DirectMessage, DirectTyping, DirectTypingReply, DisconnectReason, EnterQueueReply, Envelope, Event,
        EventsReply, HistoryEntry, HistoryReply, IdentityReply, LeaveQueueReply, LeftChatReply,
        MessageExpired, MessageId, MessageReceived, MessagesReply, PartnerDisconnected, PartnerInfo,
        PartnerReconnected, PartnerReconnecting, PartnerTyping, PresenceStatus, QueueStatus, Reply,
        SentDirectReply, SentRoomReply, TakenReply, Time, TypingReply,
    };
    use serde_json::Value;

    use crate::handler::ChatServer;
    use crate::tools::{TOOL_NAMES, error_data, events_data, reply_data, wait_data};

    const NOW: Time = Time::from_millis(1_795_189_503_606);
    const LATER: Time = Time::from_millis(1_795_189_803_606);

    /// Adds `additionalProperties: false` to every object schema that lists properties,
    /// so a serialized field the schema does not describe fails the check.
    fn strict(schema: &mut Value) {
        match schema {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(strict);
            }
            Value::Array(items) => items.iter_mut().for_each(strict),
            _ => {}
        }
    }

    /// Checks `data` against `tool`'s advertised output schema, as advertised and strictly.
    fn check(tool: &str, data: &Value) {
        let router = ChatServer::router();
        let schema = router.tools.get(tool).and_then(|t| t.output_schema.clone());
        let Some(schema) = schema else { panic!("{tool} has no output schema") };
        let advertised = Value::Object(schema.as_ref().clone());
        let mut tight = advertised.clone();
        strict(&mut tight);
        for schema in [advertised, tight] {
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{tool}: invalid schema: {e}"));
            let errors: Vec<String> = validator.iter_errors(data).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{tool}: {errors:#?}\n{data:#}\n{schema:#}");
        }
    }

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn partner() -> PartnerInfo {
        PartnerInfo { user_id: id("u_4ec01b24856a7035"), display_name: id("Bob") }
    }

    fn direct(seq: u64) -> DirectMessage {
        DirectMessage {
            seq,
            message_id: MessageId(0x084c_3440_134c_1278),
            from: id("frontend-ide"),
            from_name: id("Frontend IDE"),
            message: "API ready?".into(),
            timestamp: NOW,
        }
    }

    fn checked_in(token: bool) -> CheckedInReply {
        CheckedInReply {
            client_id: id("frontend-ide"),
            name: id("Frontend IDE"),
            capabilities: vec![id("react")],
            resume_token: token.then(|| id("rt_3a09fe63d1b9056ff6073d15f5b28861")),
            pending_messages: 2,
        }
    }

    fn sent_direct() -> SentDirectReply {
        SentDirectReply {
            recipient_id: id("backend-ide"),
            message_id: MessageId(7),
            timestamp: NOW,
            expires_at: LATER,
            recipient_online: true,
        }
    }

    fn waiting(estimate: Option<u64>) -> QueueStatus {
        QueueStatus::Waiting { position: 1, queue_length: 3, estimated_wait_secs: estimate }
    }

    fn matched() -> QueueStatus {
        QueueStatus::Matched {
            room_id: id("r_26725df31a7bf35c"),
            partner: partner(),
            shared_interests: vec![id("rust")],
        }
    }

    fn identity(user: bool, activity: ActivityState) -> IdentityReply {
        IdentityReply {
            user_id: user.then(|| id("u_25e68e7ef2db101a")),
            display_name: user.then(|| id("Ann")),
            resume_token: user.then(|| id("rt_e3c01da261dd8c04301cbe02d45a5296")),
            checked_in: false,
            activity,
            pending_events: 1,
            pending_messages: 0,
            last_seq: 4,
        }
    }

    /// The tool that returns a reply, written as an exhaustive match so that a new reply
    /// variant needs a decision (and a schema) here. `TakenReply` is never returned as it
    /// is: `send_message_and_wait` reshapes it (see `wait_data`).
    fn tool_of(reply: &Reply) -> Option<&'static str> {
        Some(match reply {
            Reply::EnterQueue(_) => "enter_queue",
            Reply::LeaveQueue(_) => "leave_queue",
            Reply::SentRoom(_) | Reply::SentDirect(_) => "send_message",
            Reply::LeftChat(_) => "leave_chat",
            Reply::Typing(_) | Reply::DirectTyping(_) => "set_typing",
            Reply::Blocked(_) => "block_partner",
            Reply::History(_) => "get_history",
            Reply::CheckedIn(_) => "checkin_client",
            Reply::Clients(_) => "list_clients",
            Reply::Messages(_) => "get_messages",
            Reply::Identity(_) => "get_my_identity",
            Reply::Events(_) => "wait_for_events",
            Reply::TakenReply(_) => return None,
        })
    }

    /// One of every event, in every form; the match makes a new variant a compile error
    /// until it is described in [`super::Envelope`].
    fn events() -> Vec<Arc<Envelope>> {
        let events = vec![
            Event::ChatroomFound(ChatroomFound {
                room_id: id("r_1"),
                partner: partner(),
                shared_interests: vec![],
            }),
            Event::MessageReceived(MessageReceived {
                room_id: Some(id("r_1")),
                message_id: MessageId(1),
                from: id("u_1"),
                from_name: id("Ann"),
                message: "hi".into(),
                timestamp: NOW,
            }),
            Event::MessageReceived(MessageReceived {
                room_id: None,
                message_id: MessageId(2),
                from: id("backend-ide"),
                from_name: id("Backend"),
                message: "direct".into(),
                timestamp: NOW,
            }),
            Event::PartnerTyping(PartnerTyping { room_id: id("r_1"), typing: true }),
            Event::DirectTyping(DirectTyping {
                from: id("backend-ide"),
                from_name: id("Backend"),
                typing: true,
            }),
            Event::PartnerDisconnected(PartnerDisconnected {
                room_id: id("r_1"),
                reason: DisconnectReason::Left,
                undelivered: vec![],
            }),
            Event::PartnerDisconnected(PartnerDisconnected {
                room_id: id("r_2"),
                reason: DisconnectReason::Timeout,
                undelivered: vec![MessageId(9)],
            }),
            Event::PartnerDisconnected(PartnerDisconnected {
                room_id: id("r_3"),
                reason: DisconnectReason::Shutdown,
                undelivered: vec![],
            }),
            Event::PartnerReconnecting(PartnerReconnecting { room_id: id("r_2"), reconnect_by: LATER }),
            Event::PartnerReconnected(PartnerReconnected { room_id: id("r_2") }),
            Event::MessageExpired(MessageExpired {
                message_id: MessageId(3),
                recipient_id: id("backend-ide"),
                message: "ping".into(),
                sent_at: NOW,
                expired_at: LATER,
            }),
        ];
        let kinds: BTreeSet<u8> = events
            .iter()
            .map(|event| match event {
                Event::ChatroomFound(_) => 0,
                Event::MessageReceived(_) => 1,
                Event::PartnerDisconnected(_) => 2,
                Event::PartnerTyping(_) => 3,
                Event::MessageExpired(_) => 4,
                Event::PartnerReconnecting(_) => 5,
                Event::PartnerReconnected(_) => 6,
                Event::DirectTyping(_) => 7,
            })
            .collect();
        assert_eq!(kinds.len(), 8, "one sample per event type");
        events.into_iter().zip(1..).map(|(event, seq)| Arc::new(Envelope { seq, event })).collect()
    }

    /// Every reply the tools return, with optional fields both present and absent.
    fn replies() -> Vec<(Reply, Option<Reply>)> {
        let history = |ended: Option<DisconnectReason>| HistoryReply {
            room_id: id("r_1"),
            active: ended.is_none(),
            ended_reason: ended,
            partner: partner(),
            messages: vec![HistoryEntry {
                seq: 1,
                message_id: MessageId(9),
                from: id("u_1"),
                from_name: id("Ann"),
                message: "Hi Bob!".into(),
                timestamp: NOW,
            }],
            omitted: 0,
        };
        let sent_room =
            SentRoomReply { room_id: id("r_1"), message_id: MessageId(5), seq: 1, timestamp: NOW };
        let client = |status: PresenceStatus| ClientSummary {
            client_id: id("c"),
            name: id("C"),
            capabilities: vec![],
            status,
            last_seen: NOW,
        };
        let implicit = Some(Reply::CheckedIn(checked_in(true)));
        let enter = |resume_token: Option<Arc<str>>, status: QueueStatus| {
            Reply::EnterQueue(EnterQueueReply {
                user_id: id("u_25e68e7ef2db101a"),
                display_name: id("Ann"),
                resume_token,
                interests: vec![id("rust")],
                status,
            })
        };
        vec![
            (enter(Some(id("rt_1")), waiting(Some(12))), None),
            (enter(None, waiting(None)), None),
            (enter(None, matched()), None),
            (Reply::LeaveQueue(LeaveQueueReply { was_queued: true }), None),
            (Reply::SentRoom(sent_room.clone()), None),
            (Reply::SentRoom(sent_room), implicit.clone()),
            (Reply::SentDirect(sent_direct()), None),
            (Reply::SentDirect(sent_direct()), implicit.clone()),
            (Reply::LeftChat(LeftChatReply { room_id: id("r_1"), was_active: true, requeued: None }), None),
            (
                Reply::LeftChat(LeftChatReply {
                    room_id: id("r_1"),
                    was_active: false,
                    requeued: Some(waiting(None)),
                }),
                None,
            ),
            (
                Reply::LeftChat(LeftChatReply {
                    room_id: id("r_1"),
                    was_active: true,
                    requeued: Some(matched()),
                }),
                None,
            ),
            (Reply::Typing(TypingReply { room_id: id("r_1"), typing: false, notified: true }), None),
            (
                Reply::DirectTyping(DirectTypingReply {
                    recipient_id: id("backend-ide"),
                    typing: true,
                    notified: true,
                }),
                None,
            ),
            (Reply::Blocked(BlockedReply { room_id: id("r_1"), blocked_user_id: id("u_2") }), None),
            (Reply::History(history(None)), None),
            (Reply::History(history(Some(DisconnectReason::Timeout))), None),
            (Reply::CheckedIn(checked_in(true)), None),
            (Reply::CheckedIn(checked_in(false)), None),
            (
                Reply::Clients(ClientsReply {
                    clients: [PresenceStatus::Online, PresenceStatus::Reconnecting, PresenceStatus::Offline]
                        .into_iter()
                        .map(client)
                        .collect(),
                    omitted: 0,
                }),
                None,
            ),
            (Reply::Messages(MessagesReply { messages: vec![direct(1)], remaining: 0 }), None),
            (Reply::Messages(MessagesReply { messages: vec![], remaining: 3 }), implicit),
            (Reply::Identity(identity(false, ActivityState::Idle)), None),
            (Reply::Identity(identity(true, ActivityState::Idle)), None),
            (Reply::Identity(identity(true, ActivityState::Waiting { position: 2 })), None),
            (
                Reply::Identity(identity(
                    true,
                    ActivityState::Chatting { room_id: id("r_1"), partner: partner() },
                )),
                None,
            ),
            (
                Reply::Events(EventsReply {
                    events: events(),
                    next_after_seq: 10,
                    last_seq: 10,
                    pending: 10,
                    evicted: 0,
                }),
                None,
            ),
            (
                Reply::Events(EventsReply {
                    events: vec![],
                    next_after_seq: 8,
                    last_seq: 8,
                    pending: 0,
                    evicted: 2,
                }),
                None,
            ),
            (Reply::TakenReply(TakenReply { message: None }), None),
        ]
    }

    #[test]
    fn every_reply_matches_its_tools_output_schema() {
        let mut covered = BTreeSet::new();
        for (reply, checkin) in replies() {
            let Some(tool) = tool_of(&reply) else { continue };
            let data = match &reply {
                Reply::Events(events) => events_data(events, 3),
                _ => reply_data(&reply, checkin, 3),
            };
            check(tool, &data);
            if crate::era::BINDING_TOOLS.contains(&tool) || tool == "get_my_identity" {
                // What a binding call adds (see `era.rs`).
                let mut bound = data.clone();
                bound["handle"] = serde_json::json!("0f9c0c9e6d3a4a1b9d8e7f6a5b4c3d2e");
                bound["inbox_uri"] = serde_json::json!("chat://inbox/5b4c3d2e0f9c0c9e6d3a4a1b9d8e7f6a");
                check(tool, &bound);
            }
            covered.insert(tool);
        }
        for replied in [Some(direct(4)), None] {
            for checkin in [None, Some(Reply::CheckedIn(checked_in(true)))] {
                let data =
                    wait_data(&sent_direct(), replied.as_ref(), Duration::from_millis(850), checkin, 0);
                check("send_message_and_wait", &data);
            }
        }
        covered.insert("send_message_and_wait");
        // resume_session answers with the identity, like get_my_identity.
        check("resume_session", &reply_data(&Reply::Identity(identity(true, ActivityState::Idle)), None, 0));
        covered.insert("resume_session");
        for tool in TOOL_NAMES {
            check(tool, &error_data("invalid_arguments", "room_id is required", 0));
        }
        assert_eq!(
            covered,
            TOOL_NAMES.into_iter().collect::<BTreeSet<_>>(),
            "every tool's shapes are checked"
        );
    }

    #[test]
    #[should_panic(expected = "leave_queue")]
    fn the_strict_check_refuses_undeclared_fields() {
        let mut data = reply_data(&Reply::LeaveQueue(LeaveQueueReply { was_queued: true }), None, 0);
        if let Value::Object(map) = &mut data {
            map.insert("undeclared".into(), Value::Bool(true));
        }
        check("leave_queue", &data);
    }

    #[test]
    fn schemas_are_objects_at_the_root() {
        for tool in ChatServer::router().tools.list_all() {
            let schema = tool.output_schema.unwrap_or_else(|| panic!("{} has no output schema", tool.name));
            assert_eq!(schema.get("type"), Some(&Value::from("object")), "{}", tool.name);
            assert!(schema.contains_key("anyOf"), "{}: the result or the error shape", tool.name);
        }
    }
}
