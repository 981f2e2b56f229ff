//! Commands: everything a session can ask of the core.

use serde::{Deserialize, Serialize};

/// A request from one session. Each maps to one MCP tool of the adapter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Join the roulette queue, binding the identity first if the session has none.
    /// Without `user_id` a fresh id is generated (or the session's own is used).
    EnterQueue {
        /// Identity to bind; `None` = the session's identity or a generated one.
        user_id: Option<String>,
        /// Name shown to partners; default "Anonymous".
        display_name: Option<String>,
        /// Topics to be matched on (preferred, not required after `interest_timeout`).
        interests: Vec<String>,
        /// Proof of ownership when `user_id` names an existing identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
    },
    /// Leave the queue (no error if not queued).
    LeaveQueue,
    /// Send a message to the partner in a room.
    SendRoom {
        /// The room.
        room_id: String,
        /// The text.
        message: String,
        /// The sender's own key for this message: a retry with the same key returns the
        /// first result instead of sending again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// Send a direct message to the mailbox of a known client.
    SendDirect {
        /// The recipient's client id.
        recipient_id: String,
        /// The text.
        message: String,
        /// As for `SendRoom`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
    },
    /// End the chat; with `requeue` go straight back into the queue ("next").
    LeaveChat {
        /// The room.
        room_id: String,
        /// Re-enter the queue with the same interests.
        requeue: bool,
    },
    /// Tell the partner you are typing (or stopped).
    SetTyping {
        /// The room.
        room_id: String,
        /// Typing or not.
        typing: bool,
    },
    /// Tell a client you are typing a direct message to them (or stopped). Like
    /// `SetTyping`, only changes notify, and the indicator clears itself.
    SetDirectTyping {
        /// The client id you are writing to.
        recipient_id: String,
        /// Typing or not.
        typing: bool,
    },
    /// End the chat, report the partner, and never be matched with them again.
    BlockPartner {
        /// The room.
        room_id: String,
        /// Optional reason kept in the report.
        reason: Option<String>,
    },
    /// Read a room's recent messages (also for a while after it ended).
    History {
        /// The room.
        room_id: String,
    },
    /// Bind a named client identity for agent messaging and record its presence.
    Checkin {
        /// The client id to act as.
        client_id: String,
        /// Human-readable name; default the client id.
        name: Option<String>,
        /// What the client can do, free-form labels.
        capabilities: Vec<String>,
        /// Proof of ownership when `client_id` exists already (its resume token, or the
        /// secret an operator registered it with).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
    },
    /// Who is known: checked-in clients, online or offline.
    ListClients,
    /// Return and remove pending direct messages, oldest first.
    GetMessages {
        /// At most this many (capped by `max_fetch`).
        limit: Option<usize>,
    },
    /// Return pending direct messages without removing them.
    PeekMessages,
    /// Return and remove the first direct message from `from` whose seq is after `after_seq`
    /// (the building block of `send_message_and_wait`).
    TakeReply {
        /// The expected sender.
        from: String,
        /// Only messages newer than this event seq count.
        after_seq: u64,
    },
    /// The session's identity and state.
    Identity,
    /// Re-attach this session to an identity, proving ownership with its token.
    Resume {
        /// The identity.
        user_id: String,
        /// The token returned when the identity was first bound.
        resume_token: String,
    },
    /// Events after a cursor. With `after_seq`, everything up to it is acknowledged
    /// (dropped from the inbox); without, every unacknowledged event is returned.
    Events {
        /// The newest seq already processed.
        after_seq: Option<u64>,
        /// At most this many (capped by `max_fetch`).
        limit: Option<usize>,
    },
}
