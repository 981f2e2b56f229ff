//! The view model: the words of the header, status bar, typing line and DM sidebar,
//! derived from the app state. The renderer only lays them out and colours them.

use chat_core::PresenceStatus;

use super::entry::{clock_time, wait_text};
use super::{App, Connection, Mode, Roulette};

/// How urgent the status bar looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Everything is fine.
    Normal,
    /// Waiting or connecting.
    Pending,
    /// Something is wrong (partner left, connection lost).
    Alert,
}

/// One line of the DM sidebar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidebarItem {
    /// The client id.
    pub client_id: String,
    /// Its presence.
    pub status: PresenceStatus,
    /// Unread messages from it.
    pub unread: usize,
    /// Whether it is the current recipient.
    pub selected: bool,
    /// Whether it is typing a direct message to us.
    pub typing: bool,
}

impl App {
    /// The header: mode and who we are.
    pub fn header(&self) -> String {
        let mode = match &self.settings.mode {
            Mode::Roulette => "roulette",
            Mode::Dm { .. } => "direct messages",
        };
        match &self.me {
            Some(me) => format!("mcp-chat · {mode} · {}", me.display_name),
            None => format!("mcp-chat · {mode}"),
        }
    }

    /// The status bar's text and tone.
    pub fn status(&self) -> (String, Tone) {
        match &self.connection {
            Connection::Connecting => {
                return (format!("connecting to {}…", self.settings.server), Tone::Pending);
            }
            Connection::Reconnecting { attempt } => {
                return (format!("connection lost · reconnecting (attempt {attempt})…"), Tone::Alert);
            }
            Connection::Closed => return ("disconnected".into(), Tone::Alert),
            Connection::Failed(message) => return (format!("error: {message}"), Tone::Alert),
            Connection::Online => {}
        }
        if let Mode::Dm { .. } = self.settings.mode {
            return (self.dm_status(), Tone::Normal);
        }
        match &self.roulette {
            Roulette::Idle => ("idle · /next to find a partner".into(), Tone::Normal),
            Roulette::Waiting { position, queue_length, since, apart_from, .. } => {
                // No estimate: the server's guess from the recent matching rate was off
                // by minutes. What is known: the place, and how long it has been.
                let mut s = format!("waiting for a partner · #{position} of {queue_length}");
                if let Some(now) = self.now {
                    s.push_str(&format!(" · for {}", wait_text(now.since(*since).as_secs())));
                }
                if let Some(name) = apart_from {
                    s.push_str(&format!(" · not {name} again yet"));
                }
                (s, Tone::Pending)
            }
            Roulette::Chatting { partner, partner_away: Some(until), .. } => (
                format!(
                    "{}'s connection dropped · waiting for them until {}…",
                    partner.display_name,
                    clock_time(*until, self.settings.offset_secs, true)
                ),
                Tone::Pending,
            ),
            Roulette::Chatting { partner, shared_interests, .. } => {
                let mut s = format!("chatting with {}", partner.display_name);
                if !shared_interests.is_empty() {
                    s.push_str(&format!(" · shared: {}", shared_interests.join(", ")));
                }
                (s, Tone::Normal)
            }
            Roulette::PartnerLeft { partner, .. } => {
                (format!("{} left · /next for someone new", partner.display_name), Tone::Alert)
            }
        }
    }

    fn dm_status(&self) -> String {
        let mut s = match &self.dm.target {
            Some(target) => format!("to {target}"),
            None => "/to <client_id> to pick a recipient".to_owned(),
        };
        let unread: Vec<String> = self.dm.unread.iter().map(|(who, n)| format!("{who} {n}")).collect();
        if !unread.is_empty() {
            s.push_str(&format!(" · unread: {}", unread.join(", ")));
        }
        s
    }

    /// While the partner's connection is down: the room and the partner's name. What we
    /// send meanwhile is held for them (delivered if they come back).
    pub fn partner_away(&self) -> Option<(&str, &str)> {
        match &self.roulette {
            Roulette::Chatting { room_id, partner, partner_away: Some(_), .. } => {
                Some((room_id, &partner.display_name))
            }
            _ => None,
        }
    }

    /// "Bob is typing…" while the partner types; in DM mode, while the current
    /// recipient types to us (or, before there is one, whoever does).
    pub fn typing_line(&self) -> Option<String> {
        if let Mode::Dm { .. } = self.settings.mode {
            let typing = match &self.dm.target {
                Some(target) => self.dm.typing.get(target),
                None => self.dm.typing.values().next(),
            };
            return typing.map(|(_, name)| format!("{name} is typing…"));
        }
        match &self.roulette {
            Roulette::Chatting { partner, partner_typing: Some(_), .. } => {
                Some(format!("{} is typing…", partner.display_name))
            }
            _ => None,
        }
    }

    /// The DM sidebar: known clients (plus anyone with unread messages), or `None`
    /// outside DM mode.
    pub fn sidebar(&self) -> Option<Vec<SidebarItem>> {
        let Mode::Dm { client_id: me } = &self.settings.mode else { return None };
        let target = self.dm.target.as_deref();
        let mut items: Vec<SidebarItem> = self
            .dm
            .clients
            .iter()
            .filter(|c| *c.client_id != **me)
            .map(|c| SidebarItem {
                client_id: c.client_id.to_string(),
                status: c.status,
                unread: self.dm.unread.get(&*c.client_id).copied().unwrap_or(0),
                selected: target == Some(&*c.client_id),
                typing: self.dm.typing.contains_key(&*c.client_id),
            })
            .collect();
        for (who, n) in &self.dm.unread {
            if !items.iter().any(|i| i.client_id == *who) {
                items.push(SidebarItem {
                    client_id: who.clone(),
                    status: PresenceStatus::Offline,
                    unread: *n,
                    selected: target == Some(who),
                    typing: self.dm.typing.contains_key(who),
                });
            }
        }
        if let Some(target) = target
            && !items.iter().any(|i| i.client_id == target)
        {
            items.push(SidebarItem {
                client_id: target.to_owned(),
                status: PresenceStatus::Offline,
                unread: 0,
                selected: true,
                typing: self.dm.typing.contains_key(target),
            });
        }
        Some(items)
    }
}
