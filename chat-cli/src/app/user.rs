//! What the user does: keys, submitted lines, slash commands, quitting, and our own
//! typing indicator.

use chat_core::Time;

use super::command::{self, HELP, Line, Slash};
use super::entry;
use super::input::LineEditor;
use super::{Action, App, Connection, Key, Mode, PAGE, Roulette, TYPING_REFRESH, TypingTarget};

impl App {
    /// A key from the terminal.
    pub fn on_key(&mut self, key: Key, now: Time) -> Vec<Action> {
        self.now = Some(now);
        let recalled = matches!(key, Key::Up | Key::Down);
        let edited = match key {
            Key::Interrupt => return self.quit(now),
            Key::Enter => {
                let line = self.input.take();
                let mut actions = Vec::new();
                let sends_text = matches!(command::parse(&line), Line::Text(_));
                // Sending a message clears the indicator on the server by itself.
                if let Some((_, target)) = self.typing.sent_at.take()
                    && !sends_text
                {
                    actions.push(target.action(false));
                }
                self.scroll = 0;
                self.unread_below = 0;
                actions.extend(self.submit(&line, now));
                return actions;
            }
            Key::Char(c) => {
                self.input.insert(c);
                true
            }
            Key::Newline => {
                self.input.newline();
                true
            }
            Key::Paste(text) => {
                self.input.insert_str(&text);
                true
            }
            Key::Backspace => self.input.backspace(),
            Key::Delete => self.input.delete(),
            Key::DeleteWord => self.input.delete_word(),
            Key::KillToStart => self.input.kill_to_start(),
            Key::KillToEnd => self.input.kill_to_end(),
            Key::Left => self.motion(LineEditor::left),
            Key::Right => self.motion(LineEditor::right),
            Key::WordLeft => self.motion(LineEditor::word_left),
            Key::WordRight => self.motion(LineEditor::word_right),
            Key::Home => self.motion(LineEditor::home),
            Key::End => self.motion(LineEditor::end),
            Key::Up => self.motion(|e| {
                if !e.line_up() {
                    e.history_prev();
                }
            }),
            Key::Down => self.motion(|e| {
                if !e.line_down() {
                    e.history_next();
                }
            }),
            Key::PageUp => {
                self.scroll = self.scroll.saturating_add(PAGE);
                false
            }
            Key::PageDown => {
                self.scroll = self.scroll.saturating_sub(PAGE);
                false
            }
            Key::Escape => {
                self.scroll = 0;
                false
            }
        };
        if self.scroll == 0 {
            self.unread_below = 0;
        }
        if recalled || edited {
            self.typing.last_edit = Some(now);
            return self.typing_update(now);
        }
        Vec::new()
    }

    fn motion(&mut self, f: fn(&mut LineEditor)) -> bool {
        f(&mut self.input);
        false
    }

    /// Clamps the scroll offset to what the view can show (the renderer knows the height).
    pub fn clamp_scroll(&mut self, max: usize) {
        self.scroll = self.scroll.min(max);
        if self.scroll == 0 {
            self.unread_below = 0;
        }
    }

    /// A whole submitted line: a message or a slash command.
    pub fn submit(&mut self, line: &str, now: Time) -> Vec<Action> {
        if self.quitting || self.done {
            return Vec::new();
        }
        match command::parse(line) {
            Line::Empty => Vec::new(),
            Line::Text(text) => self.send_text(text, now),
            Line::Command(slash) => self.command(slash, now),
        }
    }

    /// Starts closing the session. A second call (a second Ctrl-C) gives up waiting.
    pub fn quit(&mut self, now: Time) -> Vec<Action> {
        if self.quitting || self.done {
            self.done = true;
            return Vec::new();
        }
        self.quitting = true;
        if matches!(self.connection, Connection::Failed(_) | Connection::Closed) {
            self.done = true;
            return Vec::new();
        }
        self.info(now, "closing the session…");
        vec![Action::Quit]
    }

    fn send_text(&mut self, text: String, now: Time) -> Vec<Action> {
        if matches!(self.connection, Connection::Failed(_) | Connection::Closed) {
            self.error(now, "not connected; your message was not sent");
            return Vec::new();
        }
        if let Mode::Dm { .. } = self.settings.mode {
            return match self.dm.target.clone() {
                Some(to) => vec![Action::SendDirect { to, text }],
                None => {
                    self.error(now, "pick a recipient first: /to <client_id> (/who lists clients)");
                    Vec::new()
                }
            };
        }
        let hint = match &self.roulette {
            Roulette::Chatting { room_id, .. } => {
                return vec![Action::SendRoom { room_id: room_id.to_string(), text }];
            }
            Roulette::Waiting { .. } => "you are still waiting for a partner; not sent",
            Roulette::PartnerLeft { .. } => "the chat has ended; not sent. /next to meet someone new",
            Roulette::Idle if self.connection == Connection::Connecting => "still connecting; not sent",
            Roulette::Idle => "you are not in a chat; not sent. /next to find a partner",
        };
        self.error(now, hint);
        Vec::new()
    }

    fn command(&mut self, slash: Slash, now: Time) -> Vec<Action> {
        let dm = matches!(self.settings.mode, Mode::Dm { .. });
        match slash {
            Slash::Quit => self.quit(now),
            Slash::Help => {
                self.info(now, &HELP.join("\n"));
                Vec::new()
            }
            Slash::Time if self.line_mode => {
                self.info(now, "plain lines always show seconds; /time is for the full-screen view");
                Vec::new()
            }
            Slash::Time => {
                self.seconds = !self.seconds;
                let how = if self.seconds { "with seconds" } else { "in minutes" };
                self.info(now, &format!("times are shown {how}; /time switches back"));
                Vec::new()
            }
            Slash::Unknown(name) => {
                self.error(now, &format!("unknown command {name}; /help lists the commands"));
                Vec::new()
            }
            Slash::MissingArgument { usage, .. } => {
                self.error(now, &format!("usage: {usage}"));
                Vec::new()
            }
            Slash::Who if dm => vec![Action::ListClients { quiet: false }],
            Slash::Who => {
                self.who(now);
                Vec::new()
            }
            Slash::To { client_id, message } => {
                if !dm {
                    self.error(now, "/to is for direct messages: start with `chat-cli dm --as <your_id>`");
                    return Vec::new();
                }
                self.dm.unread.remove(&client_id);
                if self.dm.target.as_deref() != Some(client_id.as_str()) {
                    self.info(now, &format!("now writing to {client_id}"));
                }
                self.dm.target = Some(client_id.clone());
                let mut actions = self.refresh_clients_for(&client_id, now);
                if let Some(text) = message.filter(|m| !m.trim().is_empty()) {
                    actions.extend(self.send_text(text, now));
                }
                actions
            }
            _ if dm => {
                self.error(now, "that command is for roulette; in DM mode use /to, /who, /help or /quit");
                Vec::new()
            }
            Slash::Next => match &self.roulette {
                Roulette::Chatting { room_id, .. } => {
                    vec![Action::LeaveChat { room_id: room_id.to_string(), requeue: true }]
                }
                Roulette::Waiting { .. } => {
                    self.info(now, "you are already waiting for a partner");
                    Vec::new()
                }
                Roulette::Idle | Roulette::PartnerLeft { .. } => vec![Action::EnterQueue],
            },
            Slash::Leave => match &self.roulette {
                Roulette::Chatting { room_id, .. } => {
                    vec![Action::LeaveChat { room_id: room_id.to_string(), requeue: false }]
                }
                Roulette::Waiting { .. } => {
                    self.leaving_queue = true;
                    vec![Action::LeaveQueue]
                }
                Roulette::Idle | Roulette::PartnerLeft { .. } => {
                    self.info(now, "you are not in a chat or the queue; /quit exits");
                    Vec::new()
                }
            },
            Slash::Block(reason) => match &self.roulette {
                Roulette::Chatting { room_id, .. } | Roulette::PartnerLeft { room_id, .. } => {
                    vec![Action::Block { room_id: room_id.to_string(), reason }]
                }
                _ => {
                    self.error(now, "there is nobody to block: you are not in a chat");
                    Vec::new()
                }
            },
            Slash::History => match self.last_room.clone() {
                Some(room_id) => vec![Action::History { room_id: room_id.to_string() }],
                None => {
                    self.info(now, "no chat yet, so no history");
                    Vec::new()
                }
            },
        }
    }

    /// `/who` in roulette mode: answered from local state.
    fn who(&mut self, now: Time) {
        let me = self.me.as_ref().map_or_else(
            || "not identified yet".to_owned(),
            |m| format!("you are {}", entry::name_and_id(&m.display_name, &m.user_id)),
        );
        let state = match &self.roulette {
            Roulette::Chatting { partner, shared_interests, partner_away, .. } => {
                let mut s =
                    format!("chatting with {}", entry::name_and_id(&partner.display_name, &partner.user_id));
                if !shared_interests.is_empty() {
                    s.push_str(&format!("; shared interests: {}", shared_interests.join(", ")));
                }
                if partner_away.is_some() {
                    s.push_str("; their connection dropped, waiting for them");
                }
                s
            }
            Roulette::Waiting { position, queue_length, .. } => {
                format!("waiting: #{position} of {queue_length} in the queue")
            }
            Roulette::PartnerLeft { partner, .. } => format!("{} left the chat", partner.display_name),
            Roulette::Idle => "idle".to_owned(),
        };
        self.info(now, &format!("{me}; {state}"));
    }

    /// Our typing indicator after an edit: on (refreshed) while composing a message,
    /// off when the line is emptied or turns into a command. It goes to the roulette
    /// partner, or in DM mode to the current recipient.
    fn typing_update(&mut self, now: Time) -> Vec<Action> {
        let target = self.typing_target();
        let composing = target.is_some() && !self.input.is_empty() && !self.input.text().starts_with('/');
        let mut actions = Vec::new();
        if let Some((at, sent_to)) = self.typing.sent_at.clone() {
            let same = target.as_ref() == Some(&sent_to);
            if composing && same && now.since(at) < TYPING_REFRESH {
                return actions;
            }
            if !composing || !same {
                self.typing.sent_at = None;
                actions.push(sent_to.action(false));
            }
        }
        if composing && let Some(target) = target {
            actions.push(target.action(true));
            self.typing.sent_at = Some((now, target));
        }
        actions
    }

    /// Who our typing indicator is for right now, if anyone: the roulette room we chat
    /// in, or the DM recipient (never ourselves).
    fn typing_target(&self) -> Option<TypingTarget> {
        match &self.settings.mode {
            Mode::Dm { client_id } => {
                self.dm.target.as_ref().filter(|t| *t != client_id).map(|t| TypingTarget::Direct(t.clone()))
            }
            Mode::Roulette => match &self.roulette {
                Roulette::Chatting { room_id, .. } => Some(TypingTarget::Room(room_id.clone())),
                _ => None,
            },
        }
    }
}
