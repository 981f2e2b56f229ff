//! The vocabulary between the pure app and the network layer.
//!
//! The app never performs I/O: it answers every input with [`Action`]s for the network
//! layer, which answers with [`NetEvent`]s. Both are plain data, so the app can be driven
//! by hand in tests exactly as the real client drives it.

use chat_core::{
    BlockedReply, CheckedInReply, ClientsReply, EnterQueueReply, Envelope, HistoryReply, IdentityReply,
    LeaveQueueReply, LeftChatReply, SentDirectReply, SentRoomReply,
};

/// Something the app wants the server to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `enter_queue` again (the session's identity is kept).
    EnterQueue,
    /// `leave_queue`.
    LeaveQueue,
    /// `send_message` to the partner in a room.
    SendRoom {
        /// The room.
        room_id: String,
        /// The text.
        text: String,
    },
    /// `send_message` to a client's mailbox.
    SendDirect {
        /// The recipient's client id.
        to: String,
        /// The text.
        text: String,
    },
    /// `set_typing`; best effort, failures are not reported.
    SetTyping {
        /// The room.
        room_id: String,
        /// Typing or stopped.
        typing: bool,
    },
    /// `set_typing` to a client we are writing a direct message to; best effort, like
    /// [`Action::SetTyping`].
    SetDirectTyping {
        /// The recipient's client id.
        to: String,
        /// Typing or stopped.
        typing: bool,
    },
    /// `leave_chat`, optionally straight back into the queue.
    LeaveChat {
        /// The room.
        room_id: String,
        /// `/next` rather than `/leave`.
        requeue: bool,
    },
    /// `block_partner`.
    Block {
        /// The room.
        room_id: String,
        /// Optional reason for the report.
        reason: Option<String>,
    },
    /// `get_history`.
    History {
        /// The room.
        room_id: String,
    },
    /// `list_clients`; `quiet` refreshes the sidebar without a scrollback entry.
    ListClients {
        /// A background refresh rather than `/who`.
        quiet: bool,
    },
    /// `enter_queue` again while waiting, to refresh the position and the queue length
    /// (the server keeps the place and does not push changes). Failures are not
    /// reported: a match in the meantime arrives as an event.
    RefreshQueue,
    /// Close the session (HTTP DELETE, so a partner is told at once) and stop.
    Quit,
}

/// How the client came to be who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Joined {
    /// Roulette: the `enter_queue` reply.
    Roulette(EnterQueueReply),
    /// Direct messages: the `checkin_client` reply.
    Dm(CheckedInReply),
    /// Roulette, in the middle of a chat: an identity an earlier run left behind (it
    /// crashed or was killed), taken back with `resume_session`, as the server has it.
    Restored(IdentityReply),
}

/// Which request a tool error answers, so the app can word it and undo optimistic state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `enter_queue`.
    EnterQueue,
    /// `leave_queue`.
    LeaveQueue,
    /// `send_message` (room or direct).
    Send,
    /// `leave_chat`.
    LeaveChat,
    /// `block_partner`.
    Block,
    /// `get_history`.
    History,
    /// `list_clients`.
    ListClients,
}

/// Something the network layer tells the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// Connected and identified (first time, or afresh after the server forgot us).
    Joined {
        /// The identifying reply.
        joined: Joined,
        /// `true` when a lost identity was replaced by a new one after a reconnect.
        fresh: bool,
        /// `true` when the identity is one saved by an earlier run, taken back with its
        /// resume token.
        restored: bool,
    },
    /// A server event, deduplicated and in `seq` order.
    Event(Envelope),
    /// Server events were dropped for overflow before we could fetch them.
    Evicted(u64),
    /// `send_message` to a room succeeded.
    SentRoom {
        /// What was sent.
        text: String,
        /// The server's receipt.
        reply: SentRoomReply,
    },
    /// `send_message` to a client succeeded.
    SentDirect {
        /// What was sent.
        text: String,
        /// The server's receipt.
        reply: SentDirectReply,
    },
    /// `enter_queue` (a later one, e.g. `/next` after the partner left) succeeded.
    Queued(EnterQueueReply),
    /// `leave_queue` succeeded.
    LeftQueue(LeaveQueueReply),
    /// `leave_chat` succeeded.
    LeftChat(LeftChatReply),
    /// `block_partner` succeeded.
    Blocked(BlockedReply),
    /// `get_history` answered.
    History(HistoryReply),
    /// `list_clients` answered.
    Clients {
        /// The list.
        reply: ClientsReply,
        /// A background refresh.
        quiet: bool,
    },
    /// The server refused a request; `message` is its actionable text.
    Failed {
        /// Which request.
        request: Request,
        /// The server's (or transport's) message.
        message: String,
    },
    /// The connection dropped; the network layer is reconnecting.
    Reconnecting {
        /// 1 for the first try.
        attempt: u32,
        /// Why the last try failed.
        reason: String,
    },
    /// Reconnected and took the identity back with its resume token.
    Resumed(IdentityReply),
    /// A [`Action::RefreshQueue`] answered.
    QueueRefreshed(EnterQueueReply),
    /// The session was closed on request.
    Closed,
    /// Something the user should know that does not stop the session (the state file
    /// could not be read or written, say).
    Warning(String),
    /// Giving up: the first connection or identification failed.
    Fatal(String),
}
