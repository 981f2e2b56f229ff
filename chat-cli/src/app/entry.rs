//! Entries: what the app shows, one per thing that happened.
//!
//! The TUI's scrollback, plain mode's text lines and `--json` lines are three views of
//! the same [`Entry`] values, so scripts see exactly what a person sees. `--json` is the
//! serde form: `{"type": "message", "ts": "2024-01-01T12:00:00.000Z", ...}`.

use std::sync::Arc;

use chat_core::{ClientSummary, DisconnectReason, HistoryEntry, PartnerInfo, PresenceStatus, Time};
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

/// One thing that happened, as shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// Connected and identified.
    Connected {
        /// When.
        ts: Time,
        /// The server URL.
        server: String,
        /// Our roulette user id (absent in DM mode).
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<Arc<str>>,
        /// Our DM client id (absent in roulette).
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<Arc<str>>,
        /// Our display name.
        display_name: Arc<str>,
        /// The identity was saved by an earlier run and taken back with its resume token.
        restored: bool,
    },
    /// Waiting in the roulette queue (again when the place or the queue length changes).
    Waiting {
        /// When.
        ts: Time,
        /// 1 = next to be matched.
        position: usize,
        /// Everyone waiting.
        queue_length: usize,
        /// The server's estimate, when it has one (a guess from the recent matching rate;
        /// the client does not show it).
        #[serde(skip_serializing_if = "Option::is_none")]
        estimated_wait_secs: Option<u64>,
    },
    /// Paired with a partner.
    Matched {
        /// When.
        ts: Time,
        /// The room.
        room_id: Arc<str>,
        /// Who.
        partner: PartnerInfo,
        /// Interests in common.
        shared_interests: Vec<Arc<str>>,
    },
    /// A chat message, received or sent.
    Message {
        /// When the server accepted it.
        ts: Time,
        /// The room; absent for a direct message.
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<Arc<str>>,
        /// The server's message id.
        message_id: Arc<str>,
        /// Sender's id.
        from: Arc<str>,
        /// Sender's name.
        from_name: Arc<str>,
        /// The recipient of a direct message we sent.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<Arc<str>>,
        /// The text.
        text: Arc<str>,
        /// Sent by us.
        mine: bool,
        /// One of ours that the partner never got (`partner.disconnected` said so). Set
        /// on the scrollback's copy after the fact, so it is not part of the JSON line;
        /// `partner_left` lists these instead.
        #[serde(skip)]
        undelivered: bool,
    },
    /// The partner, or a client writing to us, started or stopped typing (never in the
    /// scrollback; a status line).
    Typing {
        /// When.
        ts: Time,
        /// The room; absent for a direct message.
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<Arc<str>>,
        /// The writer's client id, for a direct message.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<Arc<str>>,
        /// The partner's (or writer's) name.
        name: Arc<str>,
        /// Typing or stopped.
        typing: bool,
    },
    /// The partner is gone and the room has ended.
    PartnerLeft {
        /// When.
        ts: Time,
        /// The room.
        room_id: Arc<str>,
        /// The partner's name.
        name: Arc<str>,
        /// Why.
        reason: DisconnectReason,
        /// Our messages that never reached them (lost while their connection was down).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        undelivered: Vec<Undelivered>,
    },
    /// The partner's connection dropped; the room waits for them.
    PartnerReconnecting {
        /// When.
        ts: Time,
        /// The room.
        room_id: Arc<str>,
        /// The partner's name.
        name: Arc<str>,
        /// When the room ends unless they are back.
        reconnect_by: Time,
    },
    /// The partner is back after [`Entry::PartnerReconnecting`].
    PartnerReconnected {
        /// When.
        ts: Time,
        /// The room.
        room_id: Arc<str>,
        /// The partner's name.
        name: Arc<str>,
    },
    /// We left a room.
    Left {
        /// When.
        ts: Time,
        /// The room.
        room_id: Arc<str>,
        /// Straight back into the queue (`/next`).
        requeued: bool,
    },
    /// We left the queue.
    LeftQueue {
        /// When.
        ts: Time,
    },
    /// We blocked the partner.
    Blocked {
        /// When.
        ts: Time,
        /// Who.
        user_id: Arc<str>,
        /// Their display name.
        name: Arc<str>,
    },
    /// DM mode: a client's presence changed (the sidebar's dot). Never in the
    /// scrollback and not a plain-text line; in `--json`, so scripts can follow presence.
    Presence {
        /// When.
        ts: Time,
        /// The client.
        client_id: Arc<str>,
        /// Online, reconnecting or offline.
        status: PresenceStatus,
    },
    /// The checked-in clients (`/who` in DM mode).
    Clients {
        /// When.
        ts: Time,
        /// The list, sorted by id.
        clients: Vec<ClientSummary>,
        /// Not listed because of the server's cap.
        omitted: usize,
    },
    /// A room's history (`/history`).
    History {
        /// When.
        ts: Time,
        /// The room.
        room_id: Arc<str>,
        /// The partner.
        partner: PartnerInfo,
        /// Whether the room is still active.
        active: bool,
        /// Oldest first.
        messages: Vec<HistoryEntry>,
    },
    /// A direct message we sent expired unread.
    Expired {
        /// When.
        ts: Time,
        /// Who did not read it.
        recipient_id: Arc<str>,
        /// Its id.
        message_id: Arc<str>,
        /// Its text, to send again.
        text: Arc<str>,
    },
    /// The connection dropped; reconnecting.
    Reconnecting {
        /// When.
        ts: Time,
        /// 1 for the first try.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// Back online.
    Reconnected {
        /// When.
        ts: Time,
        /// `true`: same identity, room and queue place; `false`: the server had forgotten
        /// us and we started afresh.
        resumed: bool,
    },
    /// Anything else worth a line (help, hints).
    Info {
        /// When.
        ts: Time,
        /// The text; may span lines.
        text: String,
    },
    /// Something the user should know; the session goes on (the state file could not
    /// be used, say).
    Warning {
        /// When.
        ts: Time,
        /// What happened and what it means.
        message: String,
    },
    /// Something went wrong; the session goes on.
    Error {
        /// When.
        ts: Time,
        /// The server's or the client's message.
        message: String,
    },
    /// The session is closed.
    Closed {
        /// When.
        ts: Time,
    },
}

/// A message of ours that never reached the partner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Undelivered {
    /// The server's message id, as in the `message` line that echoed it.
    pub message_id: Arc<str>,
    /// Its text, when the scrollback still has it (so it can be sent again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Arc<str>>,
}

/// How an entry reads, independent of colours and layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A message line: `<name> text`.
    Message {
        /// Who is shown as the speaker.
        speaker: String,
        /// Sent by us.
        mine: bool,
        /// The text.
        text: String,
        /// Ours, and it never reached the partner.
        undelivered: bool,
    },
    /// A system line (and continuation lines).
    System(Vec<String>),
    /// An error line.
    Error(String),
    /// Not shown as a line (typing changes show in the status area).
    Hidden,
}

fn presence_mark(status: PresenceStatus) -> &'static str {
    match status {
        PresenceStatus::Online => "●",
        PresenceStatus::Reconnecting => "◐",
        PresenceStatus::Offline => "○",
    }
}

/// "Bob [bob]" when the name differs from the id, else the id.
pub fn name_and_id(name: &str, id: &str) -> String {
    if name == id { id.to_owned() } else { format!("{name} [{id}]") }
}

impl Entry {
    /// When it happened.
    pub fn ts(&self) -> Time {
        match self {
            Entry::Connected { ts, .. }
            | Entry::Waiting { ts, .. }
            | Entry::Matched { ts, .. }
            | Entry::Message { ts, .. }
            | Entry::Typing { ts, .. }
            | Entry::PartnerLeft { ts, .. }
            | Entry::PartnerReconnecting { ts, .. }
            | Entry::PartnerReconnected { ts, .. }
            | Entry::Left { ts, .. }
            | Entry::LeftQueue { ts }
            | Entry::Blocked { ts, .. }
            | Entry::Presence { ts, .. }
            | Entry::Clients { ts, .. }
            | Entry::History { ts, .. }
            | Entry::Expired { ts, .. }
            | Entry::Reconnecting { ts, .. }
            | Entry::Reconnected { ts, .. }
            | Entry::Info { ts, .. }
            | Entry::Warning { ts, .. }
            | Entry::Error { ts, .. }
            | Entry::Closed { ts } => *ts,
        }
    }

    /// Whether it belongs in the scrollback (typing changes do not).
    pub fn is_persistent(&self) -> bool {
        !matches!(self, Entry::Typing { .. } | Entry::Presence { .. })
    }

    /// The words of the entry. Times inside it are wall-clock at `offset_secs`, with
    /// `seconds` or without (a deadline always has them).
    pub fn body(&self, offset_secs: i32, seconds: bool) -> Body {
        let clock = |t: Time| clock_time(t, offset_secs, seconds);
        let system = |line: String| Body::System(vec![line]);
        match self {
            Entry::Connected { server, user_id, client_id, display_name, restored, .. } => {
                let id = user_id.as_deref().or(client_id.as_deref()).unwrap_or_default();
                let mut line = format!("connected to {server} as {}", name_and_id(display_name, id));
                if *restored {
                    line.push_str(" (taken back with the resume token an earlier run saved)");
                }
                system(line)
            }
            Entry::Waiting { position, queue_length, .. } => {
                system(format!("waiting for a partner: #{position} of {queue_length} in the queue"))
            }
            Entry::Matched { partner, shared_interests, .. } => {
                let mut line = format!("you are now chatting with {}", partner.display_name);
                if !shared_interests.is_empty() {
                    line.push_str(&format!(" (shared interests: {})", shared_interests.join(", ")));
                }
                system(line + "; say hi!")
            }
            Entry::Message { from, from_name, to, text, mine, room_id, undelivered, .. } => {
                let speaker = match (to, room_id) {
                    (Some(to), _) => format!("{from_name} → {to}"),
                    (None, None) if !mine => name_and_id(from_name, from),
                    _ => from_name.to_string(),
                };
                Body::Message { speaker, mine: *mine, text: text.to_string(), undelivered: *undelivered }
            }
            Entry::Typing { .. } | Entry::Presence { .. } => Body::Hidden,
            Entry::PartnerLeft { name, reason, undelivered, .. } => {
                let mut lines = vec![match reason {
                    DisconnectReason::Left => format!("{name} left the chat; /next to meet someone new"),
                    DisconnectReason::Timeout => format!(
                        "{name} lost their connection and did not come back; /next to meet someone new"
                    ),
                    DisconnectReason::Shutdown => {
                        "the server is shutting down; the chat has ended".to_owned()
                    }
                }];
                match undelivered.len() {
                    0 => {}
                    1 => lines.push("1 of your messages was not delivered:".into()),
                    n => lines.push(format!("{n} of your messages were not delivered:")),
                }
                for lost in undelivered {
                    lines.push(match &lost.text {
                        Some(text) => format!("  {UNDELIVERED_MARK} {}", excerpt(text)),
                        None => {
                            format!("  {UNDELIVERED_MARK} (message {}, no longer shown)", lost.message_id)
                        }
                    });
                }
                Body::System(lines)
            }
            Entry::PartnerReconnecting { name, reconnect_by, .. } => system(format!(
                "{name}'s connection dropped — waiting for them (until {})…",
                clock_time(*reconnect_by, offset_secs, true)
            )),
            Entry::PartnerReconnected { name, .. } => system(format!("{name} is back")),
            Entry::Left { requeued: true, .. } => system("you left the chat; looking for someone new".into()),
            Entry::Left { requeued: false, .. } => {
                system("you left the chat; /next to meet someone new".into())
            }
            Entry::LeftQueue { .. } => system("you left the queue; /next to join it again".into()),
            Entry::Blocked { name, .. } => system(format!(
                "blocked and reported {name}; you will not be matched again; /next for someone new"
            )),
            Entry::Clients { clients, omitted, .. } => {
                let mut lines = vec![match clients.len() {
                    0 => "no clients have checked in yet".to_owned(),
                    n => format!("{n} client(s) checked in (● online, ◐ reconnecting, ○ offline):"),
                }];
                for c in clients {
                    let mut line =
                        format!("  {} {}", presence_mark(c.status), name_and_id(&c.name, &c.client_id));
                    if !c.capabilities.is_empty() {
                        line.push_str(&format!(" — {}", c.capabilities.join(", ")));
                    }
                    lines.push(line);
                }
                if *omitted > 0 {
                    lines.push(format!("  … and {omitted} more"));
                }
                Body::System(lines)
            }
            Entry::History { room_id, partner, active, messages, .. } => {
                let state = if *active { "active" } else { "ended" };
                let mut lines =
                    vec![format!("history of room {room_id} with {} ({state}):", partner.display_name)];
                if messages.is_empty() {
                    lines.push("  (no messages)".into());
                }
                for m in messages {
                    let mut text = m.message.split('\n');
                    let first = text.next().unwrap_or_default();
                    lines.push(format!("  {} <{}> {first}", clock(m.timestamp), m.from_name));
                    // The later lines of a message of several lines, under its text.
                    lines.extend(text.map(|line| format!("      {line}")));
                }
                Body::System(lines)
            }
            Entry::Expired { recipient_id, text, .. } => {
                system(format!("{recipient_id} did not read your message in time; it was dropped: {text}"))
            }
            Entry::Reconnecting { attempt, reason, .. } => {
                system(format!("connection lost ({reason}); reconnecting, attempt {attempt}…"))
            }
            Entry::Reconnected { resumed: true, .. } => {
                system("reconnected; your session was resumed".into())
            }
            Entry::Reconnected { resumed: false, .. } => {
                system("reconnected, but the server had ended your session; starting afresh".into())
            }
            Entry::Info { text, .. } => Body::System(text.lines().map(str::to_owned).collect()),
            Entry::Warning { message, .. } => Body::Error(format!("warning: {message}")),
            Entry::Error { message, .. } => Body::Error(message.clone()),
            Entry::Closed { .. } => system("disconnected".into()),
        }
    }

    /// Plain mode's line(s): `[12:00:01] <Bob> hi`, `[12:00:01] * system`, `[12:00:01] ! error`.
    /// `None` for entries that have no text form.
    pub fn plain_text(&self, offset_secs: i32) -> Option<String> {
        let ts = clock_time(self.ts(), offset_secs, true);
        match self.body(offset_secs, true) {
            Body::Message { speaker, text, undelivered, .. } => {
                // A message of several lines: the later ones indented under the first, so
                // none of them can pass for a line of its own.
                let head = format!("[{ts}] <{speaker}> ");
                let pad = " ".repeat(head.width());
                let mut out = head;
                for (i, line) in text.split('\n').enumerate() {
                    if i > 0 {
                        out.push('\n');
                        out.push_str(&pad);
                    }
                    out.push_str(line);
                }
                if undelivered {
                    out.push_str(&format!(" {UNDELIVERED_MARK} not delivered"));
                }
                Some(out)
            }
            Body::System(lines) => {
                let mut out = String::new();
                for (i, line) in lines.iter().enumerate() {
                    if i == 0 {
                        out.push_str(&format!("[{ts}] * {line}"));
                    } else {
                        out.push_str(&format!("\n[{ts}] * {line}"));
                    }
                }
                Some(out)
            }
            Body::Error(message) => Some(format!("[{ts}] ! {message}")),
            Body::Hidden => None,
        }
    }
}

/// Marks a message of ours that never reached the partner.
pub const UNDELIVERED_MARK: &str = "✗";

/// Characters of an undelivered message quoted in the notice.
const EXCERPT_CHARS: usize = 60;

/// The start of `text` on one line, for quoting it.
fn excerpt(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match flat.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", flat[..cut].trim_end()),
        None => flat,
    }
}

/// How long a wait has lasted: "12 s", "119 s", then whole minutes ("3 min" from 180 s):
/// never more than has passed.
pub fn wait_text(secs: u64) -> String {
    if secs < 120 { format!("{secs} s") } else { format!("{} min", secs / 60) }
}

/// The local calendar day of `t` at a UTC offset, as "Mon 1 Jan 2024".
pub fn local_day(t: Time, offset_secs: i32) -> String {
    let ms = i64::try_from(t.as_millis()).unwrap_or(i64::MAX).saturating_add(i64::from(offset_secs) * 1000);
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|dt| dt.format("%a %-d %b %Y").to_string())
        .unwrap_or_default()
}

/// Wall-clock time of `t` at a UTC offset: `12:00` or, with `seconds`, `12:00:01`.
pub fn clock_time(t: Time, offset_secs: i32, seconds: bool) -> String {
    let ms = i64::try_from(t.as_millis()).unwrap_or(i64::MAX).saturating_add(i64::from(offset_secs) * 1000);
    let Some(dt) = chrono::DateTime::from_timestamp_millis(ms) else {
        return "--:--".into();
    };
    dt.format(if seconds { "%H:%M:%S" } else { "%H:%M" }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Time = Time::from_millis(1_704_110_400_000); // 2024-01-01 12:00:00 UTC

    #[test]
    fn clock_time_applies_the_offset() {
        assert_eq!(clock_time(T, 0, true), "12:00:00");
        assert_eq!(clock_time(T, 3600, false), "13:00");
        assert_eq!(clock_time(T, -90 * 60, false), "10:30");
    }

    #[test]
    fn the_local_day_follows_the_offset() {
        assert_eq!(local_day(T, 0), "Mon 1 Jan 2024");
        assert_eq!(local_day(T, 12 * 3600), "Tue 2 Jan 2024", "midnight east of UTC");
        assert_eq!(local_day(T, -13 * 3600), "Sun 31 Dec 2023");
    }

    #[test]
    fn plain_text_prefixes_each_kind() {
        let message = Entry::Message {
            ts: T,
            room_id: Some("r_1".into()),
            message_id: "m_1".into(),
            from: "u_b".into(),
            from_name: "Bob".into(),
            to: None,
            text: "hi".into(),
            mine: false,
            undelivered: false,
        };
        assert_eq!(message.plain_text(0).as_deref(), Some("[12:00:00] <Bob> hi"));
        let error = Entry::Error { ts: T, message: "too long".into() };
        assert_eq!(error.plain_text(0).as_deref(), Some("[12:00:00] ! too long"));
        let info = Entry::Info { ts: T, text: "a\nb".into() };
        assert_eq!(info.plain_text(0).as_deref(), Some("[12:00:00] * a\n[12:00:00] * b"));
        let typing =
            Entry::Typing { ts: T, room_id: Some("r".into()), from: None, name: "Bob".into(), typing: true };
        assert_eq!(typing.plain_text(0), None);
    }

    #[test]
    fn a_message_of_several_lines_keeps_them_indented() {
        let message = Entry::Message {
            ts: T,
            room_id: Some("r_1".into()),
            message_id: "m_1".into(),
            from: "u_b".into(),
            from_name: "Bob".into(),
            to: None,
            text: "line one\nline two\n[12:00:00] * not a system line".into(),
            mine: false,
            undelivered: false,
        };
        assert_eq!(
            message.plain_text(0).as_deref(),
            Some(
                "[12:00:00] <Bob> line one\n                 line two\n                 [12:00:00] * not a system line"
            )
        );
    }

    #[test]
    fn json_form_is_tagged_by_type() {
        let entry = Entry::Waiting { ts: T, position: 1, queue_length: 2, estimated_wait_secs: None };
        let json = serde_json::to_value(&entry).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"type": "waiting", "ts": "2024-01-01T12:00:00.000Z", "position": 1, "queue_length": 2})
        );
    }

    #[test]
    fn direct_messages_show_ids() {
        let dm = Entry::Message {
            ts: T,
            room_id: None,
            message_id: "m".into(),
            from: "bob".into(),
            from_name: "Bob".into(),
            to: None,
            text: "yo".into(),
            mine: false,
            undelivered: false,
        };
        assert_eq!(dm.plain_text(0).as_deref(), Some("[12:00:00] <Bob [bob]> yo"));
        assert_eq!(wait_text(12), "12 s");
        assert_eq!(wait_text(119), "119 s");
        assert_eq!(wait_text(200), "3 min", "elapsed: rounded down");
    }

    #[test]
    fn undelivered_messages_are_quoted_on_one_line_and_shortened() {
        let long = format!("line one\nline two {}", "x".repeat(80));
        let left = Entry::PartnerLeft {
            ts: T,
            room_id: "r".into(),
            name: "Bob".into(),
            reason: DisconnectReason::Timeout,
            undelivered: vec![Undelivered { message_id: "m_1".into(), text: Some(long.into()) }],
        };
        let Body::System(lines) = left.body(0, true) else { panic!("a system entry") };
        assert_eq!(lines[1], "1 of your messages was not delivered:");
        let quoted = format!("  ✗ line one line two {}…", "x".repeat(42));
        assert_eq!(lines[2], quoted);
    }
}
