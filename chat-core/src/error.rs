//! Everything that can go wrong with a command, worded for the model or person who sent it.
//!
//! Each message says what happened and what to do next, because the adapter shows it
//! verbatim as a tool error.

use thiserror::Error;

/// Why a command was refused. The `Display` text is the actionable message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChatError {
    /// The session handle is unknown or already closed.
    #[error("this session has ended; reconnect and call resume_session with your user_id and resume_token")]
    UnknownSession,
    /// The command needs an identity and the session has none.
    #[error(
        "this session has no identity yet; call enter_queue (chat roulette) or checkin_client (agent messaging) first"
    )]
    NotIdentified,
    /// The session already acts as someone else.
    #[error(
        "this session is already '{current}'; one session holds one identity, so open a new session to act as '{requested}'"
    )]
    AlreadyIdentified {
        /// The identity bound to the session.
        current: String,
        /// The identity that was asked for.
        requested: String,
    },
    /// A command claimed (in `field`) an identity that is not the session's.
    #[error(
        "{field} '{claimed}' is not this session's identity ('{current}'); omit {field} or pass '{current}'. To act as another client, open a new session."
    )]
    IdentityMismatch {
        /// The argument that carried the claim.
        field: String,
        /// The identity claimed.
        claimed: String,
        /// The session's identity.
        current: String,
    },
    /// The identity exists and belongs to whoever holds its token.
    #[error(
        "'{id}' belongs to someone; if it is yours, pass its resume_token (or call resume_session with it), otherwise choose another id"
    )]
    IdentityTaken {
        /// The identity asked for.
        id: String,
    },
    /// No identity with that id and token exists (the two cases are not told apart).
    #[error(
        "no identity '{id}' matches that resume_token; check the token, or call enter_queue / checkin_client to start afresh"
    )]
    BadResumeToken {
        /// The identity asked for.
        id: String,
    },
    /// A user id / client id / recipient id is malformed.
    #[error("{field} must be 1 to {max} characters of ASCII letters, digits, '-', '_', '.', '@' or ':'")]
    InvalidId {
        /// Which argument.
        field: &'static str,
        /// The length limit.
        max: usize,
    },
    /// A name, interest, capability, reason or message has bad content.
    #[error("{field} {problem}")]
    InvalidText {
        /// Which argument.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The message has no visible characters.
    #[error("message is empty; send at least one visible character")]
    EmptyMessage,
    /// The message is larger than `max_message_bytes`.
    #[error("message is {bytes} bytes; the limit is {max} bytes, so split it into several messages")]
    MessageTooLarge {
        /// Size of the refused message.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The room does not exist, or the caller is not one of its two participants.
    #[error("room '{room_id}' does not exist or you are not in it; get_my_identity shows your current room")]
    UnknownRoom {
        /// The room id as given.
        room_id: String,
    },
    /// The room exists and the caller was in it, but it has ended.
    #[error("room {room_id} has ended; call enter_queue to find a new partner")]
    RoomEnded {
        /// The ended room.
        room_id: String,
    },
    /// The caller is chatting already.
    #[error(
        "you are already chatting in room {room_id}; call leave_chat first (with requeue: true to find a new partner at once)"
    )]
    AlreadyInRoom {
        /// The caller's room.
        room_id: String,
    },
    /// The waiting queue is at `queue_capacity`.
    #[error("the waiting queue is full ({capacity} people); try again in a few seconds")]
    QueueFull {
        /// The limit.
        capacity: usize,
    },
    /// The server knows `max_participants` participants already.
    #[error("the server is at its limit of {capacity} participants; try again later")]
    ServerFull {
        /// The limit.
        capacity: usize,
    },
    /// The sender exceeded its message rate.
    #[error("rate limit: at most {limit} messages per {window_secs} s; retry in {retry_after_ms} ms")]
    RateLimited {
        /// Messages allowed per window.
        limit: u32,
        /// The window in seconds.
        window_secs: u64,
        /// When the next message will be accepted.
        retry_after_ms: u64,
    },
    /// The recipient's mailbox holds `mailbox_capacity` unread messages.
    #[error(
        "{recipient_id}'s mailbox is full (it holds at most {capacity} unread messages, and a byte budget); wait until they read some, then send again"
    )]
    MailboxFull {
        /// The recipient.
        recipient_id: String,
        /// The limit.
        capacity: usize,
    },
    /// Direct messages go only to clients that exist (checked in once, or registered).
    #[error(
        "no client '{recipient_id}' is known; direct messages are accepted only for clients that have checked in (list_clients shows them)"
    )]
    UnknownRecipient {
        /// The recipient asked for.
        recipient_id: String,
    },
    /// The session's identity was taken over by another session with its token.
    #[error(
        "your identity '{id}' was resumed by another session; call resume_session with its resume_token to take it back here"
    )]
    TakenOver {
        /// The identity this session had.
        id: String,
    },
    /// Direct messages go to someone else.
    #[error(
        "you cannot send a direct message to yourself; pick another recipient_id (list_clients shows who is known)"
    )]
    SelfMessage,
    /// The event cursor is beyond the newest event (for example after a server restart).
    #[error(
        "after_seq {after_seq} is ahead of your newest event ({last_seq}); the server may have restarted, so call again without after_seq"
    )]
    CursorAhead {
        /// The cursor given.
        after_seq: u64,
        /// The newest event's seq.
        last_seq: u64,
    },
}

impl ChatError {
    /// A stable machine-readable code for the error (`"unknown_room"`, …), for
    /// `structuredContent` and for clients that branch on the kind of failure. Part of the
    /// wire contract: codes are never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::UnknownSession => "unknown_session",
            ChatError::NotIdentified => "not_identified",
            ChatError::AlreadyIdentified { .. } => "already_identified",
            ChatError::IdentityMismatch { .. } => "identity_mismatch",
            ChatError::IdentityTaken { .. } => "identity_taken",
            ChatError::BadResumeToken { .. } => "bad_resume_token",
            ChatError::InvalidId { .. } => "invalid_id",
            ChatError::InvalidText { .. } => "invalid_text",
            ChatError::EmptyMessage => "empty_message",
            ChatError::MessageTooLarge { .. } => "message_too_large",
            ChatError::UnknownRoom { .. } => "unknown_room",
            ChatError::RoomEnded { .. } => "room_ended",
            ChatError::AlreadyInRoom { .. } => "already_in_room",
            ChatError::QueueFull { .. } => "queue_full",
            ChatError::ServerFull { .. } => "server_full",
            ChatError::RateLimited { .. } => "rate_limited",
            ChatError::MailboxFull { .. } => "mailbox_full",
            ChatError::SelfMessage => "self_message",
            ChatError::UnknownRecipient { .. } => "unknown_recipient",
            ChatError::TakenOver { .. } => "taken_over",
            ChatError::CursorAhead { .. } => "cursor_ahead",
        }
    }
}
