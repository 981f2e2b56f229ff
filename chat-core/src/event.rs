//! Events: what the core tells a participant without being asked.
//!
//! Every event is wrapped in an [`Envelope`] carrying a per-participant, strictly
//! increasing `seq`. The adapter pushes each one as a notification whose method is
//! [`Event::method`] and whose params are the envelope's JSON, and the same envelopes
//! stay fetchable with [`crate::Command::Events`] until acknowledged.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{MessageId, SessionId};
use crate::time::Time;

/// Who someone is, as shown to the other side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerInfo {
    /// The partner's user id.
    pub user_id: Arc<str>,
    /// The partner's display name.
    pub display_name: Arc<str>,
}

/// `chatroom.found`: the queue paired you with someone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatroomFound {
    /// The new room; pass it to `send_message`.
    pub room_id: Arc<str>,
    /// Who you are talking to.
    pub partner: PartnerInfo,
    /// Interests you both listed (empty when matched without one).
    pub shared_interests: Vec<Arc<str>>,
}

/// `message.received`: a message for you, in a room (`room_id` set) or direct (no `room_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReceived {
    /// The room it was sent in; absent for a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<Arc<str>>,
    /// Unique id of the message.
    pub message_id: MessageId,
    /// Sender's user id / client id.
    pub from: Arc<str>,
    /// Sender's display name.
    pub from_name: Arc<str>,
    /// The text.
    pub message: String,
    /// When the server accepted it.
    pub timestamp: Time,
}

/// Why a partner is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// They called `leave_chat` or `block_partner`, or closed their session.
    Left,
    /// Their connection was lost and they did not come back within the reconnect grace.
    Timeout,
    /// The server is shutting down.
    Shutdown,
}

/// `partner.disconnected`: the room has ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerDisconnected {
    /// The room that ended.
    pub room_id: Arc<str>,
    /// Why.
    pub reason: DisconnectReason,
    /// Your messages that never reached the partner (sent while their connection was
    /// lost, with reason `timeout`); absent when everything arrived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<MessageId>,
}

/// `partner.reconnecting`: the partner's connection was lost. The room is kept for them
/// until `reconnect_by`; messages you send meanwhile are delivered if they come back,
/// and listed in `partner.disconnected` (`undelivered`) if they do not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerReconnecting {
    /// The room.
    pub room_id: Arc<str>,
    /// When the room ends (`partner.disconnected`, `timeout`) unless they are back.
    pub reconnect_by: Time,
}

/// `partner.reconnected`: the partner is back after `partner.reconnecting`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerReconnected {
    /// The room.
    pub room_id: Arc<str>,
}

/// `partner.typing`: the partner started or stopped typing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerTyping {
    /// The room.
    pub room_id: Arc<str>,
    /// `true` while they type; `false` when they stop or the indicator times out.
    pub typing: bool,
}

/// `direct.typing`: a client started or stopped typing a direct message to you.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectTyping {
    /// The writer's client id (reply to it with `recipient_id`).
    pub from: Arc<str>,
    /// The writer's display name.
    pub from_name: Arc<str>,
    /// `true` while they type; `false` when they stop or the indicator times out. A
    /// direct message from them also ends it, without a `false`.
    pub typing: bool,
}

/// `message.expired`: a direct message you sent was not read in time and was dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageExpired {
    /// The message's id, as returned when you sent it.
    pub message_id: MessageId,
    /// Who did not read it.
    pub recipient_id: Arc<str>,
    /// The text, so it can be sent again.
    pub message: String,
    /// When it was sent.
    pub sent_at: Time,
    /// When it expired.
    pub expired_at: Time,
}

/// One thing that happened to a participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// See [`ChatroomFound`].
    #[serde(rename = "chatroom.found")]
    ChatroomFound(ChatroomFound),
    /// See [`MessageReceived`].
    #[serde(rename = "message.received")]
    MessageReceived(MessageReceived),
    /// See [`PartnerDisconnected`].
    #[serde(rename = "partner.disconnected")]
    PartnerDisconnected(PartnerDisconnected),
    /// See [`PartnerReconnecting`].
    #[serde(rename = "partner.reconnecting")]
    PartnerReconnecting(PartnerReconnecting),
    /// See [`PartnerReconnected`].
    #[serde(rename = "partner.reconnected")]
    PartnerReconnected(PartnerReconnected),
    /// See [`PartnerTyping`].
    #[serde(rename = "partner.typing")]
    PartnerTyping(PartnerTyping),
    /// See [`MessageExpired`].
    #[serde(rename = "message.expired")]
    MessageExpired(MessageExpired),
    /// See [`DirectTyping`].
    #[serde(rename = "direct.typing")]
    DirectTyping(DirectTyping),
}

impl Envelope {
    /// Roughly how many bytes the envelope holds in memory (for the inbox and history
    /// budgets): its texts plus [`ENVELOPE_OVERHEAD_BYTES`].
    pub fn approx_bytes(&self) -> usize {
        let text = match &self.event {
            Event::MessageReceived(m) => m.message.len() + m.from.len() + m.from_name.len(),
            Event::MessageExpired(m) => m.message.len() + m.recipient_id.len(),
            Event::ChatroomFound(f) => {
                f.partner.display_name.len() + f.shared_interests.iter().map(|i| i.len()).sum::<usize>()
            }
            Event::PartnerDisconnected(d) => d.undelivered.len() * 8,
            Event::DirectTyping(t) => t.from.len() + t.from_name.len(),
            _ => 0,
        };
        ENVELOPE_OVERHEAD_BYTES + text
    }
}

impl Event {
    /// The notification method name, also the `type` field of the JSON.
    pub fn method(&self) -> &'static str {
        match self {
            Event::ChatroomFound(_) => "chatroom.found",
            Event::MessageReceived(_) => "message.received",
            Event::PartnerDisconnected(_) => "partner.disconnected",
            Event::PartnerReconnecting(_) => "partner.reconnecting",
            Event::PartnerReconnected(_) => "partner.reconnected",
            Event::PartnerTyping(_) => "partner.typing",
            Event::MessageExpired(_) => "message.expired",
            Event::DirectTyping(_) => "direct.typing",
        }
    }

    /// The room the event concerns, if any.
    pub fn room_id(&self) -> Option<&Arc<str>> {
        match self {
            Event::ChatroomFound(e) => Some(&e.room_id),
            Event::MessageReceived(e) => e.room_id.as_ref(),
            Event::PartnerDisconnected(e) => Some(&e.room_id),
            Event::PartnerReconnecting(e) => Some(&e.room_id),
            Event::PartnerReconnected(e) => Some(&e.room_id),
            Event::PartnerTyping(e) => Some(&e.room_id),
            Event::MessageExpired(_) | Event::DirectTyping(_) => None,
        }
    }

    /// Whether this is a direct message (one that sits in the mailbox until fetched).
    pub fn is_direct_message(&self) -> bool {
        matches!(self, Event::MessageReceived(m) if m.room_id.is_none())
    }
}

/// What an envelope costs besides its text, roughly: the `Arc`, the ids, the inbox slot.
/// Budgets count in these approximate bytes.
pub const ENVELOPE_OVERHEAD_BYTES: usize = 160;

/// An event with its per-participant sequence number. Serializes flat:
/// `{"seq": 3, "type": "message.received", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Strictly increasing per participant, starting at 1; gaps mean events that were
    /// fetched another way (direct messages) or dropped for overflow.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// An event to push now: the participant is online on `session`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outbound {
    /// The live session of the participant the event is for.
    pub session: SessionId,
    /// That participant's id.
    pub user_id: Arc<str>,
    /// The event, shared with the participant's inbox.
    pub envelope: Arc<Envelope>,
}
