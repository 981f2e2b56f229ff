//! Agent messaging: check-in, presence, mailboxes, direct messages and their expiry,
//! typing indicators to a client, and the event cursor.

use std::sync::Arc;

use crate::chat::Chat;
use crate::error::ChatError;
use crate::event::{DirectTyping, Event, MessageExpired, MessageReceived};
use crate::ids::{SessionId, clean_label, clean_list, validate_id, validate_message};
use crate::participant::{ClientMeta, Presence};
use crate::reply::{
    CheckedInReply, ClientSummary, ClientsReply, DirectTypingReply, EventsReply, MessagesReply,
    SentDirectReply, TakenReply,
};
use crate::roulette::rate_check;
use crate::timers::Timer;

impl Chat {
    /// `Checkin`: binds the client identity and records its name and capabilities.
    pub(crate) fn checkin(
        &mut self,
        session: SessionId,
        client_id: &str,
        name: Option<&str>,
        capabilities: &[String],
        token: Option<&str>,
    ) -> Result<CheckedInReply, ChatError> {
        let limits = &self.limits;
        let name = name.map(|n| clean_label("name", n, limits.max_display_name_chars)).transpose()?;
        let capabilities = clean_list(
            "capabilities",
            capabilities,
            limits.max_capabilities,
            limits.max_capability_chars,
            false,
        )?;
        let bound = self.bind(session, "client_id", Some(client_id), token, |id: &str| Arc::from(id))?;
        let p = self.participants.get_mut(&bound.key).ok_or(ChatError::NotIdentified)?;
        if let Some(name) = name {
            p.name = name;
        } else if p.client.is_none() && bound.new_token.is_some() && &*p.name == "Anonymous" {
            p.name = p.id.clone();
        }
        p.client = Some(ClientMeta { capabilities });
        self.clients.insert(p.id.clone());
        Ok(CheckedInReply {
            client_id: p.id.clone(),
            name: p.name.clone(),
            capabilities: p.client.as_ref().map(|c| c.capabilities.clone()).unwrap_or_default(),
            resume_token: bound.new_token,
            pending_messages: p.inbox.direct_len(),
        })
    }

    /// `ListClients`: checked-in clients sorted by id.
    pub(crate) fn list_clients(&self) -> ClientsReply {
        let max = self.limits.max_listed_clients;
        let clients = self
            .clients
            .iter()
            .filter_map(|id| self.by_id.get(id).and_then(|k| self.participants.get(k)))
            .take(max)
            .map(|p| ClientSummary {
                client_id: p.id.clone(),
                name: p.name.clone(),
                capabilities: p.client.as_ref().map(|c| c.capabilities.clone()).unwrap_or_default(),
                status: p.presence_status(),
                last_seen: p.last_seen,
            })
            .collect();
        ClientsReply { clients, omitted: self.clients.len().saturating_sub(max) }
    }

    /// `SendDirect`: into a known recipient's mailbox, pushed if online, expiring after
    /// the TTL with a notice to the sender. Mail to an id nobody has checked in as (nor an
    /// operator registered) is refused: whoever claimed that id first would read it.
    pub(crate) fn send_direct(
        &mut self,
        key: u64,
        recipient_id: &str,
        message: String,
    ) -> Result<SentDirectReply, ChatError> {
        validate_id("recipient_id", recipient_id, &self.limits)?;
        validate_message(&message, &self.limits)?;
        let sender = self.participants.get(&key).ok_or(ChatError::NotIdentified)?;
        if *sender.id == *recipient_id {
            return Err(ChatError::SelfMessage);
        }
        let (from, from_name) = (sender.id.clone(), sender.name.clone());
        let now = self.now;
        let unknown = || ChatError::UnknownRecipient { recipient_id: recipient_id.to_string() };
        let recipient = *self.by_id.get(recipient_id).ok_or_else(unknown)?;
        let r = self.participants.get(&recipient).ok_or_else(unknown)?;
        let capacity = self.limits.mailbox_capacity;
        let size =
            crate::event::ENVELOPE_OVERHEAD_BYTES + message.len() + sender.id.len() + sender.name.len();
        if r.inbox.direct_len() >= capacity || r.inbox.direct_bytes() + size > self.limits.mailbox_bytes {
            return Err(ChatError::MailboxFull { recipient_id: recipient_id.to_string(), capacity });
        }
        let limits = &self.limits;
        let sender = self.participants.get_mut(&key).ok_or(ChatError::NotIdentified)?;
        rate_check(sender, now, limits)?;
        // The message ends the sender's typing indicator to the recipient by itself.
        sender.typing_to.remove(&recipient);
        let message_id = self.ids.message_id();
        let event = MessageReceived { room_id: None, message_id, from, from_name, message, timestamp: now };
        let seq = self.emit(recipient, Event::MessageReceived(event), Some(key));
        let expires_at = now.plus(self.limits.message_ttl);
        self.timers.set(expires_at, Timer::DirectExpiry { participant: recipient, seq });
        self.stats.direct_messages_sent += 1;
        let r = self.participants.get(&recipient).ok_or(ChatError::NotIdentified)?;
        Ok(SentDirectReply {
            recipient_id: r.id.clone(),
            message_id,
            timestamp: now,
            expires_at,
            recipient_online: r.session().is_some(),
        })
    }

    /// `SetDirectTyping`: a typing indicator to a known client, shown while the recipient
    /// has a session (online or reconnecting). As in a room, only changes notify (`true`
    /// while on extends it), a message to the recipient ends it silently, and it clears
    /// itself after `typing_timeout` (the recipient is then told `typing: false`). An
    /// offline recipient is told nothing and nothing is kept for later: the reply says
    /// `typing: false`. Unknown ids are refused as `SendDirect` refuses them, so typing
    /// reveals no more than messaging does.
    pub(crate) fn set_direct_typing(
        &mut self,
        key: u64,
        recipient_id: &str,
        typing: bool,
    ) -> Result<DirectTypingReply, ChatError> {
        validate_id("recipient_id", recipient_id, &self.limits)?;
        let sender = self.participants.get(&key).ok_or(ChatError::NotIdentified)?;
        if *sender.id == *recipient_id {
            return Err(ChatError::SelfMessage);
        }
        let (from, from_name) = (sender.id.clone(), sender.name.clone());
        let unknown = || ChatError::UnknownRecipient { recipient_id: recipient_id.to_string() };
        let recipient = *self.by_id.get(recipient_id).ok_or_else(unknown)?;
        let r = self.participants.get(&recipient).ok_or_else(unknown)?;
        let recipient_name = r.id.clone();
        let on = typing && !matches!(r.presence, Presence::Offline { .. });
        let until = self.now.plus(self.limits.typing_timeout);
        let sender = self.participants.get_mut(&key).ok_or(ChatError::NotIdentified)?;
        let was_on = if on {
            sender.typing_to.insert(recipient, until).is_some()
        } else {
            sender.typing_to.remove(&recipient).is_some()
        };
        if on && !was_on {
            self.timers.set(until, Timer::DirectTyping { sender: key, recipient });
        }
        let notified = on != was_on;
        if notified {
            self.emit(recipient, Event::DirectTyping(DirectTyping { from, from_name, typing: on }), None);
        }
        Ok(DirectTypingReply { recipient_id: recipient_name, typing: on, notified })
    }

    /// A direct typing timer fired: clear the indicator if it was not refreshed.
    pub(crate) fn direct_typing_timeout(&mut self, sender: u64, recipient: u64) {
        let now = self.now;
        let Some(p) = self.participants.get_mut(&sender) else { return };
        let Some(&until) = p.typing_to.get(&recipient) else { return };
        if until > now {
            self.timers.set(until, Timer::DirectTyping { sender, recipient });
            return;
        }
        p.typing_to.remove(&recipient);
        let event = DirectTyping { from: p.id.clone(), from_name: p.name.clone(), typing: false };
        self.emit(recipient, Event::DirectTyping(event), None);
    }

    /// Withdraws every direct typing indicator `sender` shows (it went offline): each
    /// recipient is told `typing: false` at once rather than when the indicator runs out.
    pub(crate) fn clear_direct_typing(&mut self, sender: u64) {
        let Some(p) = self.participants.get_mut(&sender) else { return };
        if p.typing_to.is_empty() {
            return;
        }
        let recipients = std::mem::take(&mut p.typing_to);
        let (from, from_name) = (p.id.clone(), p.name.clone());
        for recipient in recipients.into_keys() {
            let event = DirectTyping { from: from.clone(), from_name: from_name.clone(), typing: false };
            self.emit(recipient, Event::DirectTyping(event), None);
        }
    }

    /// An expiry timer fired: drop the message if still unread and tell its sender.
    pub(crate) fn expire_direct(&mut self, recipient: u64, seq: u64) {
        let Some(p) = self.participants.get_mut(&recipient) else { return };
        let Some(stored) = p.inbox.remove_direct(seq) else { return };
        let recipient_id = p.id.clone();
        self.stats.direct_messages_expired += 1;
        let (Event::MessageReceived(m), Some(sender)) = (&stored.envelope.event, stored.direct_from) else {
            return;
        };
        let notice = MessageExpired {
            message_id: m.message_id,
            recipient_id,
            message: m.message.clone(),
            sent_at: m.timestamp,
            expired_at: self.now,
        };
        self.emit(sender, Event::MessageExpired(notice), None);
    }

    /// `GetMessages`: removes and returns unread direct messages, oldest first.
    pub(crate) fn get_messages(&mut self, key: u64, limit: Option<usize>) -> MessagesReply {
        let limit = limit.unwrap_or(usize::MAX).min(self.limits.max_fetch);
        let Some(p) = self.participants.get_mut(&key) else {
            return MessagesReply { messages: Vec::new(), remaining: 0 };
        };
        let messages = p.inbox.take_direct(limit);
        MessagesReply { messages, remaining: p.inbox.direct_len() }
    }

    /// `PeekMessages`: unread direct messages, without removing them.
    pub(crate) fn peek_messages(&self, key: u64) -> MessagesReply {
        let Some(p) = self.participants.get(&key) else {
            return MessagesReply { messages: Vec::new(), remaining: 0 };
        };
        MessagesReply {
            messages: p.inbox.peek_direct(self.limits.max_fetch),
            remaining: p.inbox.direct_len(),
        }
    }

    /// `TakeReply`: the first direct message from `from` after `after_seq`, removed.
    pub(crate) fn take_reply(&mut self, key: u64, from: &str, after_seq: u64) -> TakenReply {
        let Some(&sender) = self.by_id.get(from) else { return TakenReply { message: None } };
        let message =
            self.participants.get_mut(&key).and_then(|p| p.inbox.take_direct_from(sender, after_seq));
        TakenReply { message }
    }

    /// `Events`: acknowledges through `after_seq` (if given) and returns what follows.
    pub(crate) fn events(
        &mut self,
        key: u64,
        after_seq: Option<u64>,
        limit: Option<usize>,
    ) -> Result<EventsReply, ChatError> {
        let limit = limit.unwrap_or(usize::MAX).clamp(1, self.limits.max_fetch.max(1));
        let p = self.participants.get_mut(&key).ok_or(ChatError::NotIdentified)?;
        let last_seq = p.inbox.last_seq();
        if let Some(after) = after_seq {
            if after > last_seq {
                return Err(ChatError::CursorAhead { after_seq: after, last_seq });
            }
            p.inbox.ack(after);
        }
        let events = p.inbox.after(after_seq.unwrap_or(0), limit);
        let next = events.last().map_or(after_seq.unwrap_or(0), |e| e.seq);
        Ok(EventsReply {
            events,
            next_after_seq: next,
            last_seq: next,
            pending: p.inbox.len(),
            evicted: p.inbox.take_evicted(),
        })
    }
}
