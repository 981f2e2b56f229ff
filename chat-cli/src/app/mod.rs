//! The client's state machine: keys, submitted lines and network events in; a view model
//! and [`Action`]s out. Pure: no I/O, no clock (every call takes `now`), no terminal, so
//! every behaviour is unit-tested by feeding it inputs.

pub mod command;
pub mod entry;
pub mod input;
pub mod msg;
pub mod view;

mod server;
mod user;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chat_core::{ClientSummary, DisconnectReason, PartnerInfo, Time};

use self::entry::Entry;
use self::input::LineEditor;
pub use self::msg::{Action, Joined, NetEvent, Request};

/// How many entries the scrollback keeps.
const SCROLLBACK_LIMIT: usize = 2000;
/// Refresh `typing: true` this often while the user keeps typing (the server clears the
/// indicator after 5 s without a refresh).
const TYPING_REFRESH: Duration = Duration::from_secs(3);
/// Tell the partner we stopped after this long without a keystroke.
const TYPING_IDLE: Duration = Duration::from_secs(4);
/// Hide the partner's indicator after this long even if the "stopped" event never came.
const PARTNER_TYPING_MAX: Duration = Duration::from_secs(10);
/// Refresh the DM sidebar's client list this often. The server sends no presence
/// events, so the list is polled; what replies and messages reveal (a send to someone
/// offline, a message from someone) updates it at once in between.
const CLIENTS_REFRESH: Duration = Duration::from_secs(5);
/// ... and this often while someone is reconnecting (back or gone within the grace).
const CLIENTS_REFRESH_BUSY: Duration = Duration::from_secs(3);
/// Refresh the queue position this often while waiting.
const POSITION_REFRESH: Duration = Duration::from_secs(5);
/// ... but not more often than this when someone unknown shows up.
const CLIENTS_REFRESH_MIN: Duration = Duration::from_secs(2);
/// Rows moved by PgUp/PgDn.
const PAGE: usize = 10;

/// Roulette (talk to strangers) or direct messages (talk to named clients).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Chat roulette.
    Roulette,
    /// Direct messages as a checked-in client.
    Dm {
        /// Our client id.
        client_id: String,
    },
}

/// What the app needs to know about its surroundings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The mode.
    pub mode: Mode,
    /// The server URL, shown in the header.
    pub server: String,
    /// Local time's offset from UTC, for timestamps.
    pub offset_secs: i32,
}

/// The connection as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Before the first successful identification.
    Connecting,
    /// Connected and identified.
    Online,
    /// Lost; the network layer is trying again.
    Reconnecting {
        /// 1 for the first try.
        attempt: u32,
    },
    /// Closed on request.
    Closed,
    /// Gave up.
    Failed(String),
}

/// Where we stand in the roulette.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roulette {
    /// Neither queued nor chatting.
    Idle,
    /// In the queue.
    Waiting {
        /// 1 = next.
        position: usize,
        /// Everyone waiting.
        queue_length: usize,
        /// The server's estimate (kept for `--json`; not shown: it is a guess from the
        /// recent matching rate that was often off by minutes).
        estimated_wait_secs: Option<u64>,
        /// Since when we wait.
        since: Time,
        /// The partner we just left, whom the server's rematch cooldown keeps from us.
        apart_from: Option<Arc<str>>,
    },
    /// In a room.
    Chatting {
        /// The room.
        room_id: Arc<str>,
        /// The partner.
        partner: PartnerInfo,
        /// Interests in common.
        shared_interests: Vec<Arc<str>>,
        /// Since when the partner is typing, if they are.
        partner_typing: Option<Time>,
        /// While the partner's connection is lost (`partner.reconnecting`): when the room
        /// ends unless they are back.
        partner_away: Option<Time>,
    },
    /// The partner left; the room has ended.
    PartnerLeft {
        /// The ended room.
        room_id: Arc<str>,
        /// Who left.
        partner: PartnerInfo,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Direct-message bookkeeping.
#[derive(Clone, Debug, Default)]
pub struct Dm {
    /// Who plain text goes to.
    pub target: Option<String>,
    /// Unread messages per sender, other than the current target.
    pub unread: BTreeMap<String, usize>,
    /// The last client list.
    pub clients: Vec<ClientSummary>,
    /// When the list was last requested.
    refreshed: Option<Time>,
    /// Whether a list has arrived (changes are reported from the second one on).
    listed: bool,
    /// Clients typing a direct message to us: since when, and the name they go by.
    pub typing: BTreeMap<String, (Time, Arc<str>)>,
}

/// Where our typing indicator goes: the roulette room, or the client a direct message
/// is for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TypingTarget {
    Room(Arc<str>),
    Direct(String),
}

impl TypingTarget {
    /// The `set_typing` action for this target.
    fn action(&self, typing: bool) -> Action {
        match self {
            TypingTarget::Room(room_id) => Action::SetTyping { room_id: room_id.to_string(), typing },
            TypingTarget::Direct(to) => Action::SetDirectTyping { to: to.clone(), typing },
        }
    }
}

/// Our own typing indicator, as last told to the server.
#[derive(Clone, Debug, Default)]
struct Typing {
    /// When `typing: true` was last sent, and where to, while it is on.
    sent_at: Option<(Time, TypingTarget)>,
    /// The last edit of the input line.
    last_edit: Option<Time>,
}

/// A key, already translated from the terminal's representation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Pasted text.
    Paste(String),
    /// Submit the input (every line of it).
    Enter,
    /// Start a new line in the input (Alt-Enter, Shift-Enter, Ctrl-J).
    Newline,
    /// Delete before the cursor.
    Backspace,
    /// Delete under the cursor.
    Delete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Previous word.
    WordLeft,
    /// Next word.
    WordRight,
    /// Line start.
    Home,
    /// Line end.
    End,
    /// The line above in the input, or (on its first line) an earlier submission.
    Up,
    /// The line below in the input, or (on its last line) a later submission.
    Down,
    /// Scroll back.
    PageUp,
    /// Scroll forward.
    PageDown,
    /// Delete to the line start (Ctrl-U).
    KillToStart,
    /// Delete to the line end (Ctrl-K).
    KillToEnd,
    /// Delete the previous word (Ctrl-W).
    DeleteWord,
    /// Back to the newest messages.
    Escape,
    /// Ctrl-C: quit.
    Interrupt,
}

/// The whole client state.
#[derive(Debug)]
pub struct App {
    settings: Settings,
    me: Option<PartnerInfo>,
    connection: Connection,
    roulette: Roulette,
    /// The newest room we were in, for `/history` after it ended.
    last_room: Option<Arc<str>>,
    dm: Dm,
    scrollback: VecDeque<Entry>,
    emitted: Vec<Entry>,
    input: LineEditor,
    scroll: usize,
    /// Messages from others that arrived while scrolled back ("3 new messages ↓").
    unread_below: usize,
    /// `/time`: timestamps with seconds.
    seconds: bool,
    /// Line mode: every line has its seconds, `/time` changes nothing.
    line_mode: bool,
    typing: Typing,
    /// When the queue position was last asked for.
    position_asked: Option<Time>,
    /// A `leave_queue` is on its way: no more queue refreshes (one would queue us again).
    leaving_queue: bool,
    /// The newest time the app was told (ticks come several times a second), for the
    /// "waiting for 12 s" in the status bar.
    now: Option<Time>,
    quitting: bool,
    done: bool,
}

impl App {
    /// A fresh app, connecting.
    pub fn new(settings: Settings) -> Self {
        App {
            settings,
            me: None,
            connection: Connection::Connecting,
            roulette: Roulette::Idle,
            last_room: None,
            dm: Dm::default(),
            scrollback: VecDeque::new(),
            emitted: Vec::new(),
            input: LineEditor::default(),
            scroll: 0,
            unread_below: 0,
            seconds: false,
            line_mode: false,
            typing: Typing::default(),
            position_asked: None,
            leaving_queue: false,
            now: None,
            quitting: false,
            done: false,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Who we are, once identified.
    pub fn me(&self) -> Option<&PartnerInfo> {
        self.me.as_ref()
    }

    /// The connection state.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The roulette state.
    pub fn roulette(&self) -> &Roulette {
        &self.roulette
    }

    /// The DM state.
    pub fn dm(&self) -> &Dm {
        &self.dm
    }

    /// The scrollback, oldest first.
    pub fn scrollback(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.scrollback.iter()
    }

    /// The input line.
    pub fn input(&self) -> &LineEditor {
        &self.input
    }

    /// Rows scrolled back from the newest (0 = following new messages).
    pub fn scroll(&self) -> usize {
        self.scroll
    }

    /// Messages from others that arrived since the user scrolled back (0 when following).
    pub fn unread_below(&self) -> usize {
        self.unread_below
    }

    /// Whether timestamps show seconds (`/time`).
    pub fn seconds(&self) -> bool {
        self.seconds
    }

    /// For plain and JSON mode, whose lines always carry seconds.
    pub fn set_line_mode(&mut self) {
        self.line_mode = true;
        self.seconds = true;
    }

    /// Takes every entry produced since the last call (plain mode prints them), including
    /// transient ones that never reach the scrollback.
    pub fn take_emitted(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.emitted)
    }

    /// Whether the app has finished (closed or failed) and the program should exit.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The fatal error, if the app ended with one.
    pub fn failure(&self) -> Option<&str> {
        match &self.connection {
            Connection::Failed(message) => Some(message),
            _ => None,
        }
    }

    fn info(&mut self, now: Time, text: &str) {
        self.push(Entry::Info { ts: now, text: text.to_owned() });
    }

    fn error(&mut self, now: Time, message: &str) {
        self.push(Entry::Error { ts: now, message: message.to_owned() });
    }

    fn push(&mut self, entry: Entry) {
        if entry.is_persistent() {
            if self.scroll > 0 {
                // Keep the view still while the user reads older lines.
                self.scroll = self.scroll.saturating_add(1);
                if matches!(entry, Entry::Message { mine: false, .. }) {
                    self.unread_below += 1;
                }
            }
            self.scrollback.push_back(entry.clone());
            if self.scrollback.len() > SCROLLBACK_LIMIT {
                self.scrollback.pop_front();
            }
        }
        self.emitted.push(entry);
    }
}

fn anonymous(name: &str) -> PartnerInfo {
    PartnerInfo { user_id: name.into(), display_name: name.into() }
}
