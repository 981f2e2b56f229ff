//! Replies: what a command returns to its caller. All serialize to the JSON the adapter
//! puts in a tool result's `structuredContent`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{DisconnectReason, Envelope, PartnerInfo};
use crate::ids::MessageId;
use crate::time::Time;

/// The successful result of a [`crate::Command`], one variant per command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `EnterQueue`.
    EnterQueue(EnterQueueReply),
    /// `LeaveQueue`.
    LeaveQueue(LeaveQueueReply),
    /// `SendRoom`.
    SentRoom(SentRoomReply),
    /// `SendDirect`.
    SentDirect(SentDirectReply),
    /// `LeaveChat`.
    LeftChat(LeftChatReply),
    /// `SetTyping`.
    Typing(TypingReply),
    /// `SetDirectTyping`.
    DirectTyping(DirectTypingReply),
    /// `BlockPartner`.
    Blocked(BlockedReply),
    /// `History`.
    History(HistoryReply),
    /// `Checkin`.
    CheckedIn(CheckedInReply),
    /// `ListClients`.
    Clients(ClientsReply),
    /// `GetMessages` and `PeekMessages`.
    Messages(MessagesReply),
    /// `TakeReply`.
    TakenReply(TakenReply),
    /// `Identity` and `Resume`.
    Identity(IdentityReply),
    /// `Events`.
    Events(EventsReply),
}

/// Where a participant stands in the roulette.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum QueueStatus {
    /// Waiting for a partner.
    Waiting {
        /// 1 = next to be matched.
        position: usize,
        /// Everyone waiting.
        queue_length: usize,
        /// Estimate from the recent matching rate; absent when there is no recent data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        estimated_wait_secs: Option<u64>,
    },
    /// Paired at once.
    Matched {
        /// The new room.
        room_id: Arc<str>,
        /// The partner.
        partner: PartnerInfo,
        /// Interests in common.
        shared_interests: Vec<Arc<str>>,
    },
}

/// Result of `EnterQueue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterQueueReply {
    /// The caller's id (generated if none was given).
    pub user_id: Arc<str>,
    /// The caller's display name.
    pub display_name: Arc<str>,
    /// The secret that proves ownership of `user_id` to `Resume`; present only when this
    /// call bound the identity. Keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<Arc<str>>,
    /// The caller's interests after normalisation.
    pub interests: Vec<Arc<str>>,
    /// Waiting or matched.
    #[serde(flatten)]
    pub status: QueueStatus,
}

/// Result of `LeaveQueue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveQueueReply {
    /// Whether the caller was in the queue.
    pub was_queued: bool,
}

/// Result of `SendRoom`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRoomReply {
    /// The room.
    pub room_id: Arc<str>,
    /// The new message's id.
    pub message_id: MessageId,
    /// Position of the message in the room, from 1.
    pub seq: u64,
    /// When the server accepted it.
    pub timestamp: Time,
}

/// Result of `SendDirect`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentDirectReply {
    /// The recipient.
    pub recipient_id: Arc<str>,
    /// The new message's id.
    pub message_id: MessageId,
    /// When the server accepted it.
    pub timestamp: Time,
    /// When it expires if unread.
    pub expires_at: Time,
    /// Whether the recipient has a live session (and was notified).
    pub recipient_online: bool,
}

/// Result of `LeaveChat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftChatReply {
    /// The room left.
    pub room_id: Arc<str>,
    /// `false` if the room had already ended (the partner left first).
    pub was_active: bool,
    /// With `requeue`: the new queue status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued: Option<QueueStatus>,
}

/// Result of `SetTyping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingReply {
    /// The room.
    pub room_id: Arc<str>,
    /// The state set.
    pub typing: bool,
    /// Whether the partner was notified (`false` when throttled or unchanged).
    pub notified: bool,
}

/// Result of `SetDirectTyping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectTypingReply {
    /// The client written to.
    pub recipient_id: Arc<str>,
    /// The state set.
    pub typing: bool,
    /// Whether the recipient was notified (`false` when unchanged, or when they are
    /// offline: an indicator is not kept for later).
    pub notified: bool,
}

/// Result of `BlockPartner`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedReply {
    /// The room, now ended.
    pub room_id: Arc<str>,
    /// Who was blocked and reported.
    pub blocked_user_id: Arc<str>,
}

/// One message of a room's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position in the room, from 1.
    pub seq: u64,
    /// Message id.
    pub message_id: MessageId,
    /// Sender's id.
    pub from: Arc<str>,
    /// Sender's display name.
    pub from_name: Arc<str>,
    /// The text.
    pub message: String,
    /// When it was sent.
    pub timestamp: Time,
}

/// Result of `History`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryReply {
    /// The room.
    pub room_id: Arc<str>,
    /// Whether the room is still active.
    pub active: bool,
    /// Why it ended, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_reason: Option<DisconnectReason>,
    /// The other participant.
    pub partner: PartnerInfo,
    /// The newest messages, oldest first.
    pub messages: Vec<HistoryEntry>,
    /// Messages older than the first one shown that are no longer kept.
    pub omitted: u64,
}

/// Result of `Checkin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedInReply {
    /// The bound client id.
    pub client_id: Arc<str>,
    /// Its name.
    pub name: Arc<str>,
    /// Its capabilities.
    pub capabilities: Vec<Arc<str>>,
    /// Present when this call bound the identity. Keep it for `Resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<Arc<str>>,
    /// Unread direct messages waiting.
    pub pending_messages: usize,
}

/// Presence of a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// A live session.
    Online,
    /// Connection lost; may still resume within the reconnect grace.
    Reconnecting,
    /// No session.
    Offline,
}

/// One entry of `ListClients`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSummary {
    /// Client id.
    pub client_id: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// Capabilities declared at check-in.
    pub capabilities: Vec<Arc<str>>,
    /// Online, reconnecting or offline.
    pub status: PresenceStatus,
    /// Last time the client did anything (or was seen connected).
    pub last_seen: Time,
}

/// Result of `ListClients`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientsReply {
    /// Known clients, sorted by id.
    pub clients: Vec<ClientSummary>,
    /// Clients not listed because of `max_listed_clients`.
    pub omitted: usize,
}

/// A direct message as fetched from a mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// The event seq it arrived with.
    pub seq: u64,
    /// Message id.
    pub message_id: MessageId,
    /// Sender's client id.
    pub from: Arc<str>,
    /// Sender's name.
    pub from_name: Arc<str>,
    /// The text.
    pub message: String,
    /// When it was sent.
    pub timestamp: Time,
}

/// Result of `GetMessages` / `PeekMessages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesReply {
    /// Oldest first.
    pub messages: Vec<DirectMessage>,
    /// Direct messages still waiting after this call.
    pub remaining: usize,
}

/// Result of `TakeReply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenReply {
    /// The reply, if it has arrived.
    pub message: Option<DirectMessage>,
}

/// What a participant is doing in the roulette.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActivityState {
    /// Neither queued nor chatting.
    Idle,
    /// In the queue.
    Waiting {
        /// 1 = next.
        position: usize,
    },
    /// In a room.
    Chatting {
        /// The room.
        room_id: Arc<str>,
        /// The partner.
        partner: PartnerInfo,
    },
}

/// Result of `Identity` and `Resume`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityReply {
    /// The bound id; absent when the session has no identity yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Arc<str>>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Arc<str>>,
    /// The identity's resume token (only ever shown to its own session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<Arc<str>>,
    /// Whether the identity checked in as a messaging client.
    pub checked_in: bool,
    /// Roulette state.
    #[serde(flatten)]
    pub activity: ActivityState,
    /// Unacknowledged events.
    pub pending_events: usize,
    /// Unread direct messages.
    pub pending_messages: usize,
    /// Seq of the newest event so far (0 = none).
    pub last_seq: u64,
}

/// Result of `Events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsReply {
    /// Events after the cursor, oldest first.
    pub events: Vec<Arc<Envelope>>,
    /// The `after_seq` to pass next: the seq of the last event returned (or the cursor
    /// given, when none was). Passing it acknowledges exactly what this reply returned,
    /// never events a `limit` cut off.
    pub next_after_seq: u64,
    /// The same value as `next_after_seq` (kept for older clients).
    pub last_seq: u64,
    /// Unacknowledged events left after this call (including those returned).
    pub pending: usize,
    /// Events dropped for overflow since the previous `Events` call.
    pub evicted: u64,
}
