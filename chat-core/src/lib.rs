//! # chat-core
//!
//! The whole chat model of mcp-chat as one deterministic, synchronous state machine:
//! the roulette queue and rooms, agent mailboxes, and per-participant event inboxes.
//!
//! It is "sans I/O", in the manner of quinn-proto and str0m: no sockets, no tasks, no
//! clock, no global randomness. The adapter feeds it
//!
//! * commands: [`Chat::handle`]`(now, session, `[`Command`]`) -> Result<`[`Reply`]`, `[`ChatError`]`>`,
//! * connection changes: [`Chat::open_session`], [`Chat::hold`] / [`Chat::release`]
//!   (streams and long requests), [`Chat::touch`] and [`Chat::session_closed`]; the core
//!   decides when a silent session is lost and when it is over ([`Chat::poll_expired`]),
//! * time: [`Chat::tick`] at (or after) [`Chat::poll_timeout`],
//!
//! and drains the events to push with [`Chat::poll_outbound`]. Time comes in as
//! [`Time`] and randomness from [`Config::seed`], so the same config and the same
//! sequence of calls always produce byte-identical replies and events.
//!
//! ```
//! use chat_core::{Chat, Command, Config, Event, Time};
//!
//! let mut chat = Chat::new(Config::default());
//! let now = Time::from_millis(1_700_000_000_000);
//! let (a, b) = (chat.open_session(now), chat.open_session(now));
//! let enter = || Command::EnterQueue { user_id: None, display_name: None, interests: vec![], resume_token: None };
//! chat.handle(now, a, enter()).unwrap();
//! chat.handle(now, b, enter()).unwrap();
//! let found: Vec<_> = std::iter::from_fn(|| chat.poll_outbound()).collect();
//! assert_eq!(found.len(), 2);
//! assert!(matches!(found[0].envelope.event, Event::ChatroomFound(_)));
//! ```

mod chat;
mod command;
mod config;
mod error;
mod event;
mod identity;
mod ids;
mod inbox;
mod input;
mod invariants;
mod liveness;
mod messaging;
mod nodes;
mod participant;
mod rate;
mod reply;
mod room;
mod roulette;
mod time;
mod timers;

pub use chat::{Chat, Report, SessionEnd, SessionRecord, Stats};
pub use command::Command;
pub use config::{Config, Limits, Registered};
pub use error::ChatError;
pub use event::{
    ChatroomFound, DirectTyping, DisconnectReason, Envelope, Event, MessageExpired, MessageReceived,
    Outbound, PartnerDisconnected, PartnerInfo, PartnerReconnected, PartnerReconnecting, PartnerTyping,
};
pub use ids::{MessageId, SessionId};
pub use input::{ActAs, Answer, Applied, Input};
pub use liveness::Hold;
pub use reply::{
    ActivityState, BlockedReply, CheckedInReply, ClientSummary, ClientsReply, DirectMessage,
    DirectTypingReply, EnterQueueReply, EventsReply, HistoryEntry, HistoryReply, IdentityReply,
    LeaveQueueReply, LeftChatReply, MessagesReply, PresenceStatus, QueueStatus, Reply, SentDirectReply,
    SentRoomReply, TakenReply, TypingReply,
};
pub use time::Time;
