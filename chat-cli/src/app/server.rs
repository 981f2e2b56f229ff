//! What the server says (replies, events, connection changes) and what time does
//! (indicator expiry, periodic refreshes).

use std::sync::Arc;

use chat_core::{
    ActivityState, ClientSummary, Envelope, Event, IdentityReply, MessageId, PartnerInfo, PresenceStatus,
    QueueStatus, Time,
};

use super::entry::{Entry, Undelivered};
use super::{
    Action, App, CLIENTS_REFRESH, CLIENTS_REFRESH_BUSY, CLIENTS_REFRESH_MIN, Connection, Joined, Mode,
    NetEvent, PARTNER_TYPING_MAX, POSITION_REFRESH, Request, Roulette, TYPING_IDLE, Typing, anonymous,
};

impl App {
    /// Time passes: typing indicators expire, the DM client list is refreshed.
    pub fn tick(&mut self, now: Time) -> Vec<Action> {
        self.now = Some(now);
        let mut actions = Vec::new();
        if let Roulette::Chatting { partner_typing, .. } = &mut self.roulette
            && partner_typing.is_some_and(|since| now.since(since) >= PARTNER_TYPING_MAX)
        {
            *partner_typing = None;
        }
        self.dm.typing.retain(|_, (since, _)| now.since(*since) < PARTNER_TYPING_MAX);
        if self.typing.last_edit.is_none_or(|t| now.since(t) >= TYPING_IDLE)
            && let Some((_, target)) = self.typing.sent_at.take()
        {
            actions.push(target.action(false));
        }
        if matches!(self.roulette, Roulette::Waiting { .. })
            && self.connection == Connection::Online
            && !self.quitting
            && !self.leaving_queue
            && self.position_asked.is_none_or(|t| now.since(t) >= POSITION_REFRESH)
        {
            if self.position_asked.is_some() {
                actions.push(Action::RefreshQueue);
            }
            self.position_asked = Some(now);
        }
        if matches!(self.settings.mode, Mode::Dm { .. })
            && self.connection == Connection::Online
            && !self.quitting
            && self.dm.refreshed.is_none_or(|t| now.since(t) >= self.clients_refresh())
        {
            self.dm.refreshed = Some(now);
            actions.push(Action::ListClients { quiet: true });
        }
        actions
    }

    /// Something from the network layer.
    pub fn on_net(&mut self, event: NetEvent, now: Time) -> Vec<Action> {
        self.now = Some(now);
        let mut actions = Vec::new();
        match event {
            NetEvent::Joined { joined, fresh, restored } => {
                let first = self.me.is_none();
                self.connection = Connection::Online;
                if fresh {
                    self.push(Entry::Reconnected { ts: now, resumed: false });
                    self.roulette = Roulette::Idle;
                }
                match joined {
                    Joined::Roulette(reply) => {
                        self.me = Some(PartnerInfo {
                            user_id: reply.user_id.clone(),
                            display_name: reply.display_name.clone(),
                        });
                        if first {
                            self.connected_entry(now, restored);
                        }
                        self.apply_status(reply.status, now);
                    }
                    Joined::Restored(identity) => {
                        if let (Some(user_id), Some(display_name)) =
                            (&identity.user_id, &identity.display_name)
                        {
                            self.me = Some(PartnerInfo {
                                user_id: user_id.clone(),
                                display_name: display_name.clone(),
                            });
                        }
                        if first {
                            self.connected_entry(now, restored);
                        }
                        self.apply_identity(identity, now);
                    }
                    Joined::Dm(reply) => {
                        self.me = Some(PartnerInfo {
                            user_id: reply.client_id.clone(),
                            display_name: reply.name.clone(),
                        });
                        if first {
                            self.connected_entry(now, restored);
                            self.info(
                                now,
                                "/to <client_id> picks who to write to; /who lists clients; /help",
                            );
                        }
                        if reply.pending_messages > 0 {
                            let n = reply.pending_messages;
                            self.info(now, &format!("{n} message(s) arrived while you were away"));
                        }
                        self.dm.refreshed = Some(now);
                        actions.push(Action::ListClients { quiet: true });
                    }
                }
            }
            NetEvent::Event(envelope) => actions.extend(self.on_event(envelope, now)),
            NetEvent::Evicted(n) => self
                .info(now, &format!("{n} older event(s) were dropped by the server before they were read")),
            NetEvent::SentRoom { text, reply } => {
                let me = self.me.clone().unwrap_or_else(|| anonymous("you"));
                self.push(Entry::Message {
                    ts: reply.timestamp,
                    room_id: Some(reply.room_id),
                    message_id: reply.message_id.to_string().into(),
                    from: me.user_id,
                    from_name: me.display_name,
                    to: None,
                    text: text.into(),
                    mine: true,
                    undelivered: false,
                });
            }
            NetEvent::SentDirect { text, reply } => {
                let me = self.me.clone().unwrap_or_else(|| anonymous("you"));
                let offline = !reply.recipient_online;
                let to = reply.recipient_id.clone();
                self.push(Entry::Message {
                    ts: reply.timestamp,
                    room_id: None,
                    message_id: reply.message_id.to_string().into(),
                    from: me.user_id,
                    from_name: me.display_name,
                    to: Some(reply.recipient_id),
                    text: text.into(),
                    mine: true,
                    undelivered: false,
                });
                if offline {
                    self.info(now, &format!("{to} is offline; the message waits in their mailbox"));
                }
                let status = if offline { PresenceStatus::Offline } else { PresenceStatus::Online };
                self.note_presence(&to, None, status, now);
            }
            NetEvent::Queued(reply) => {
                let apart = self.partner_name();
                self.apply_status(reply.status, now);
                self.keep_apart(apart, now);
            }
            NetEvent::QueueRefreshed(reply) => match reply.status {
                QueueStatus::Waiting { position: p, queue_length: n, estimated_wait_secs: e } => {
                    if let Roulette::Waiting { position, queue_length, estimated_wait_secs, .. } =
                        &mut self.roulette
                        && !self.leaving_queue
                    {
                        let changed = (*position, *queue_length) != (p, n);
                        (*position, *queue_length, *estimated_wait_secs) = (p, n, e);
                        if changed {
                            let entry = Entry::Waiting {
                                ts: now,
                                position: p,
                                queue_length: n,
                                estimated_wait_secs: e,
                            };
                            self.push(entry);
                        }
                    }
                }
                matched @ QueueStatus::Matched { .. } => self.apply_status(matched, now),
            },
            NetEvent::LeftQueue(_) => {
                self.leaving_queue = false;
                self.roulette = Roulette::Idle;
                self.push(Entry::LeftQueue { ts: now });
            }
            NetEvent::LeftChat(reply) => {
                let requeued = reply.requeued.is_some();
                let apart = self.partner_name();
                if self.in_room(&reply.room_id) || matches!(self.roulette, Roulette::PartnerLeft { .. }) {
                    self.roulette = Roulette::Idle;
                }
                self.push(Entry::Left { ts: now, room_id: reply.room_id, requeued });
                if let Some(status) = reply.requeued {
                    self.apply_status(status, now);
                    self.keep_apart(apart, now);
                }
            }
            NetEvent::Blocked(reply) => {
                let name = match &self.roulette {
                    Roulette::Chatting { partner, .. } | Roulette::PartnerLeft { partner, .. }
                        if partner.user_id == reply.blocked_user_id =>
                    {
                        partner.display_name.clone()
                    }
                    _ => reply.blocked_user_id.clone(),
                };
                if self.in_room(&reply.room_id) || matches!(self.roulette, Roulette::PartnerLeft { .. }) {
                    self.roulette = Roulette::Idle;
                }
                self.push(Entry::Blocked { ts: now, user_id: reply.blocked_user_id, name });
            }
            NetEvent::History(reply) => self.push(Entry::History {
                ts: now,
                room_id: reply.room_id,
                partner: reply.partner,
                active: reply.active,
                messages: reply.messages,
            }),
            NetEvent::Clients { reply, quiet } => {
                if self.dm.listed {
                    self.report_presence_changes(&reply.clients, now);
                }
                self.dm.listed = true;
                self.dm.clients = reply.clients.clone();
                if !quiet {
                    self.push(Entry::Clients { ts: now, clients: reply.clients, omitted: reply.omitted });
                }
            }
            NetEvent::Failed { request, message } => {
                if request == Request::LeaveQueue {
                    self.leaving_queue = false;
                }
                let message = match request {
                    Request::Send => format!("not sent: {message}"),
                    Request::ListClients => format!("cannot list clients: {message}"),
                    Request::History => format!("no history: {message}"),
                    _ => message,
                };
                self.push(Entry::Error { ts: now, message });
            }
            NetEvent::Reconnecting { attempt, reason } => {
                if self.connection != Connection::Closed && !matches!(self.connection, Connection::Failed(_))
                {
                    self.connection = Connection::Reconnecting { attempt };
                }
                if attempt == 1 {
                    self.push(Entry::Reconnecting { ts: now, attempt, reason });
                }
            }
            NetEvent::Resumed(identity) => {
                self.connection = Connection::Online;
                self.push(Entry::Reconnected { ts: now, resumed: true });
                self.apply_identity(identity, now);
            }
            NetEvent::Closed => {
                self.connection = Connection::Closed;
                self.push(Entry::Closed { ts: now });
                self.done = true;
            }
            NetEvent::Warning(message) => self.push(Entry::Warning { ts: now, message }),
            NetEvent::Fatal(message) => {
                self.push(Entry::Error { ts: now, message: message.clone() });
                self.connection = Connection::Failed(message);
                self.done = true;
            }
        }
        actions
    }

    fn connected_entry(&mut self, now: Time, restored: bool) {
        if let Some(me) = self.me.clone() {
            let server = self.settings.server.clone();
            let dm = matches!(self.settings.mode, Mode::Dm { .. });
            let (user_id, client_id) = if dm { (None, Some(me.user_id)) } else { (Some(me.user_id), None) };
            self.push(Entry::Connected {
                ts: now,
                server,
                user_id,
                client_id,
                display_name: me.display_name,
                restored,
            });
        }
    }

    fn on_event(&mut self, envelope: Envelope, now: Time) -> Vec<Action> {
        let mut actions = Vec::new();
        match envelope.event {
            Event::ChatroomFound(found) => self.apply_status(
                QueueStatus::Matched {
                    room_id: found.room_id,
                    partner: found.partner,
                    shared_interests: found.shared_interests,
                },
                now,
            ),
            Event::MessageReceived(m) => {
                match (&m.room_id, &mut self.roulette) {
                    (Some(room), Roulette::Chatting { room_id, partner_typing, .. }) if room == room_id => {
                        *partner_typing = None;
                    }
                    (None, _) => {
                        // The message ends their typing indicator.
                        self.dm.typing.remove(&*m.from);
                        actions.extend(self.note_direct(&m.from, now));
                        // They just wrote, so they are online (and exist, if the list is
                        // older than their check-in).
                        self.note_presence(&m.from, Some(&m.from_name), PresenceStatus::Online, now);
                    }
                    _ => {}
                }
                self.push(Entry::Message {
                    ts: m.timestamp,
                    room_id: m.room_id,
                    message_id: m.message_id.to_string().into(),
                    from: m.from,
                    from_name: m.from_name,
                    to: None,
                    text: m.message.into(),
                    mine: false,
                    undelivered: false,
                });
            }
            Event::PartnerDisconnected(gone) => {
                if let Roulette::Chatting { room_id, partner, .. } = &self.roulette
                    && *room_id == gone.room_id
                {
                    let partner = partner.clone();
                    let name = partner.display_name.clone();
                    self.roulette =
                        Roulette::PartnerLeft { room_id: gone.room_id.clone(), partner, reason: gone.reason };
                    self.typing.sent_at = None;
                    let undelivered = self.mark_undelivered(&gone.room_id, &gone.undelivered);
                    self.push(Entry::PartnerLeft {
                        ts: now,
                        room_id: gone.room_id,
                        name,
                        reason: gone.reason,
                        undelivered,
                    });
                }
            }
            Event::PartnerReconnecting(away) => {
                if let Roulette::Chatting { room_id, partner, partner_typing, partner_away, .. } =
                    &mut self.roulette
                    && *room_id == away.room_id
                {
                    *partner_typing = None;
                    *partner_away = Some(away.reconnect_by);
                    let name = partner.display_name.clone();
                    self.push(Entry::PartnerReconnecting {
                        ts: now,
                        room_id: away.room_id,
                        name,
                        reconnect_by: away.reconnect_by,
                    });
                }
            }
            Event::PartnerReconnected(back) => {
                if let Roulette::Chatting { room_id, partner, partner_away, .. } = &mut self.roulette
                    && *room_id == back.room_id
                    && partner_away.take().is_some()
                {
                    let name = partner.display_name.clone();
                    self.push(Entry::PartnerReconnected { ts: now, room_id: back.room_id, name });
                }
            }
            Event::PartnerTyping(t) => {
                if let Roulette::Chatting { room_id, partner, partner_typing, .. } = &mut self.roulette
                    && *room_id == t.room_id
                {
                    *partner_typing = t.typing.then_some(now);
                    let name = partner.display_name.clone();
                    let room_id = Some(t.room_id);
                    self.push(Entry::Typing { ts: now, room_id, from: None, name, typing: t.typing });
                }
            }
            Event::DirectTyping(t) => {
                if matches!(self.settings.mode, Mode::Dm { .. }) {
                    if t.typing {
                        self.dm.typing.insert(t.from.to_string(), (now, t.from_name.clone()));
                    } else {
                        self.dm.typing.remove(&*t.from);
                    }
                    let (from, name, typing) = (Some(t.from), t.from_name, t.typing);
                    self.push(Entry::Typing { ts: now, room_id: None, from, name, typing });
                }
            }
            Event::MessageExpired(e) => self.push(Entry::Expired {
                ts: now,
                recipient_id: e.recipient_id,
                message_id: e.message_id.to_string().into(),
                text: e.message.into(),
            }),
        }
        actions
    }

    /// An incoming direct message: the first sender becomes the target; messages from
    /// anyone else count as unread until `/to` them.
    fn note_direct(&mut self, from: &str, now: Time) -> Vec<Action> {
        match &self.dm.target {
            None => self.dm.target = Some(from.to_owned()),
            Some(target) if target == from => {}
            Some(_) => *self.dm.unread.entry(from.to_owned()).or_default() += 1,
        }
        self.refresh_clients_for(from, now)
    }

    /// Refreshes the client list when it does not know `client_id` yet (someone new wrote,
    /// or we picked someone new), at most every few seconds.
    pub(super) fn refresh_clients_for(&mut self, client_id: &str, now: Time) -> Vec<Action> {
        let known = self.dm.clients.iter().any(|c| *c.client_id == *client_id);
        let recent = self.dm.refreshed.is_some_and(|t| now.since(t) < CLIENTS_REFRESH_MIN);
        if known || recent || !matches!(self.settings.mode, Mode::Dm { .. }) {
            return Vec::new();
        }
        self.dm.refreshed = Some(now);
        vec![Action::ListClients { quiet: true }]
    }

    /// How often the client list is polled now: faster while someone is reconnecting.
    fn clients_refresh(&self) -> std::time::Duration {
        if self.dm.clients.iter().any(|c| c.status == PresenceStatus::Reconnecting) {
            CLIENTS_REFRESH_BUSY
        } else {
            CLIENTS_REFRESH
        }
    }

    /// DM mode: what a reply or a message just told us about a client's presence, shown
    /// at once instead of at the next poll. A client the list does not have yet is added.
    fn note_presence(&mut self, client_id: &str, name: Option<&str>, status: PresenceStatus, now: Time) {
        let Mode::Dm { client_id: me } = &self.settings.mode else { return };
        if me == client_id {
            return;
        }
        match self.dm.clients.iter_mut().find(|c| *c.client_id == *client_id) {
            Some(known) if known.status == status => return,
            Some(known) => {
                known.status = status;
                known.last_seen = now;
            }
            None => {
                let at = self.dm.clients.partition_point(|c| *c.client_id < *client_id);
                self.dm.clients.insert(
                    at,
                    ClientSummary {
                        client_id: client_id.into(),
                        name: name.unwrap_or(client_id).into(),
                        capabilities: Vec::new(),
                        status,
                        last_seen: now,
                    },
                );
            }
        }
        self.push(Entry::Presence { ts: now, client_id: client_id.into(), status });
    }

    /// A fresh client list: a `presence` entry for every client whose dot changes (new
    /// ones included).
    fn report_presence_changes(&mut self, fresh: &[ClientSummary], now: Time) {
        let me = match &self.settings.mode {
            Mode::Dm { client_id } => client_id.clone(),
            Mode::Roulette => return,
        };
        let mut changes: Vec<(std::sync::Arc<str>, PresenceStatus)> = Vec::new();
        for c in fresh {
            let before = self.dm.clients.iter().find(|o| o.client_id == c.client_id).map(|o| o.status);
            if before != Some(c.status) && *c.client_id != *me {
                changes.push((c.client_id.clone(), c.status));
            }
        }
        for (client_id, status) in changes {
            self.push(Entry::Presence { ts: now, client_id, status });
        }
    }

    /// Marks our messages in `room` that the server says never arrived, newest scrollback
    /// copy only, and lists them (with their text while the scrollback has it).
    fn mark_undelivered(&mut self, room: &str, ids: &[MessageId]) -> Vec<Undelivered> {
        ids.iter()
            .map(|id| {
                let message_id: Arc<str> = id.to_string().into();
                let text = self.scrollback.iter_mut().rev().find_map(|entry| match entry {
                    Entry::Message {
                        room_id: Some(r), message_id: m, mine: true, undelivered, text, ..
                    } if **r == *room && *m == message_id => {
                        *undelivered = true;
                        Some(text.clone())
                    }
                    _ => None,
                });
                Undelivered { message_id, text }
            })
            .collect()
    }

    /// The partner of the room we are in or that just ended.
    fn partner_name(&self) -> Option<Arc<str>> {
        match &self.roulette {
            Roulette::Chatting { partner, .. } | Roulette::PartnerLeft { partner, .. } => {
                Some(partner.display_name.clone())
            }
            _ => None,
        }
    }

    /// Back in the queue straight after a chat with `partner`: the server keeps the two
    /// of us apart for its rematch cooldown, which it does not report. Say so, since
    /// with nobody else waiting that is the whole wait.
    fn keep_apart(&mut self, partner: Option<Arc<str>>, now: Time) {
        let Some(name) = partner else { return };
        if let Roulette::Waiting { apart_from, .. } = &mut self.roulette {
            *apart_from = Some(name.clone());
            self.info(
                now,
                &format!(
                    "you will not be matched with {name} again for a while (the server's rematch \
                     cooldown, 1 min by default); with nobody else waiting, that is the whole wait"
                ),
            );
        }
    }

    pub(super) fn in_room(&self, room: &str) -> bool {
        matches!(&self.roulette, Roulette::Chatting { room_id, .. } if **room_id == *room)
    }

    fn apply_status(&mut self, status: QueueStatus, now: Time) {
        match status {
            QueueStatus::Waiting { position, queue_length, estimated_wait_secs } => {
                if matches!(self.roulette, Roulette::Chatting { .. }) {
                    // A late reply must not undo a match announced by an event.
                    return;
                }
                let (since, apart_from) = match &self.roulette {
                    Roulette::Waiting { since, apart_from, .. } => (*since, apart_from.clone()),
                    _ => (now, None),
                };
                self.roulette =
                    Roulette::Waiting { position, queue_length, estimated_wait_secs, since, apart_from };
                self.push(Entry::Waiting { ts: now, position, queue_length, estimated_wait_secs });
            }
            QueueStatus::Matched { room_id, partner, shared_interests } => {
                if self.in_room(&room_id) {
                    return; // announced already (reply and event both say so)
                }
                self.last_room = Some(room_id.clone());
                self.typing = Typing::default();
                self.roulette = Roulette::Chatting {
                    room_id: room_id.clone(),
                    partner: partner.clone(),
                    shared_interests: shared_interests.clone(),
                    partner_typing: None,
                    partner_away: None,
                };
                self.push(Entry::Matched { ts: now, room_id, partner, shared_interests });
            }
        }
    }

    /// After a resume: take the server's word for where we stand.
    fn apply_identity(&mut self, identity: IdentityReply, now: Time) {
        if let (Some(user_id), Some(display_name)) = (identity.user_id, identity.display_name) {
            self.me = Some(PartnerInfo { user_id, display_name });
        }
        if matches!(self.settings.mode, Mode::Dm { .. }) {
            return;
        }
        match identity.activity {
            ActivityState::Idle => {
                let note = match &self.roulette {
                    Roulette::Chatting { partner, .. } => Some(format!(
                        "your chat with {} ended while you were away; /next to meet someone new",
                        partner.display_name
                    )),
                    Roulette::Waiting { .. } => {
                        Some("you are no longer in the queue; /next to join again".into())
                    }
                    Roulette::Idle | Roulette::PartnerLeft { .. } => None,
                };
                if let Some(note) = note {
                    self.roulette = Roulette::Idle;
                    self.info(now, &note);
                }
            }
            ActivityState::Waiting { position } => {
                let (queue_length, estimated_wait_secs, since, apart_from) = match &self.roulette {
                    Roulette::Waiting { queue_length, estimated_wait_secs, since, apart_from, .. } => {
                        ((*queue_length).max(position), *estimated_wait_secs, *since, apart_from.clone())
                    }
                    _ => (position, None, now, None),
                };
                self.roulette =
                    Roulette::Waiting { position, queue_length, estimated_wait_secs, since, apart_from };
            }
            ActivityState::Chatting { room_id, partner } => {
                if !self.in_room(&room_id) {
                    self.apply_status(
                        QueueStatus::Matched { room_id, partner, shared_interests: Vec::new() },
                        now,
                    );
                }
            }
        }
    }
}
