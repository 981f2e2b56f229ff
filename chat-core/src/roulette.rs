//! Chat roulette: the queue, matching, rooms, typing, blocking and history.

use std::sync::Arc;

use crate::chat::Chat;
use crate::chat::Report;
use crate::error::ChatError;
use crate::event::{
    ChatroomFound, DisconnectReason, Envelope, Event, MessageReceived, PartnerDisconnected, PartnerInfo,
    PartnerTyping,
};
use crate::ids::{MessageId, SessionId, clean_label, clean_list, parse_room_id, validate_message};
use crate::participant::{Activity, Participant};
use crate::reply::{
    BlockedReply, EnterQueueReply, HistoryEntry, HistoryReply, LeftChatReply, QueueStatus, SentRoomReply,
    TypingReply,
};
use crate::room::{Room, Typing};
use crate::time::Time;
use crate::timers::Timer;

/// Matches remembered for the wait estimate.
const RECENT_MATCHES: usize = 64;

impl Chat {
    /// `EnterQueue`.
    pub(crate) fn enter_queue(
        &mut self,
        session: SessionId,
        user_id: Option<&str>,
        display_name: Option<&str>,
        interests: &[String],
        token: Option<&str>,
    ) -> Result<EnterQueueReply, ChatError> {
        let limits = &self.limits;
        let name = display_name
            .map(|n| clean_label("display_name", n, limits.max_display_name_chars))
            .transpose()?;
        let interests =
            clean_list("interests", interests, limits.max_interests, limits.max_interest_chars, true)?;
        let bound = self.bind(session, "user_id", user_id, token, |_| "Anonymous".into())?;
        let key = bound.key;
        let p = self.participants.get_mut(&key).ok_or(ChatError::NotIdentified)?;
        if let Activity::Chatting { room } = p.activity {
            let room_id = self.rooms.get(&room).map(|r| r.id.to_string()).unwrap_or_default();
            return Err(ChatError::AlreadyInRoom { room_id });
        }
        if let Some(name) = name {
            p.name = name;
        }
        p.interests = interests;
        let status = self.enqueue(key)?;
        let p = self.participants.get(&key).ok_or(ChatError::NotIdentified)?;
        Ok(EnterQueueReply {
            user_id: p.id.clone(),
            display_name: p.name.clone(),
            resume_token: bound.new_token,
            interests: p.interests.clone(),
            status,
        })
    }

    /// Puts an idle participant in the queue (or keeps its place) and tries to match it.
    /// A newcomer who can be matched at once never counts against `queue_capacity`.
    fn enqueue(&mut self, key: u64) -> Result<QueueStatus, ChatError> {
        let now = self.now;
        let p = self.participants.get_mut(&key).ok_or(ChatError::NotIdentified)?;
        let (ticket, newcomer) = match p.activity {
            Activity::Queued { ticket, .. } => (ticket, false),
            _ => {
                self.next_ticket += 1;
                p.activity = Activity::Queued { ticket: self.next_ticket, since: now };
                (self.next_ticket, true)
            }
        };
        let has_interests = !p.interests.is_empty();
        if let Some(room) = self.try_match(key) {
            let r = self.rooms.get(&room).ok_or(ChatError::NotIdentified)?;
            let p = self.participants.get(&key).ok_or(ChatError::NotIdentified)?;
            return Ok(QueueStatus::Matched {
                room_id: r.id.clone(),
                partner: self.partner_info(r, p),
                shared_interests: r.shared_interests.clone(),
            });
        }
        if newcomer {
            if self.queue.len() >= self.limits.queue_capacity {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.activity = Activity::Idle;
                }
                return Err(ChatError::QueueFull { capacity: self.limits.queue_capacity });
            }
            self.queue.insert(ticket, key);
            if has_interests && !self.limits.interest_timeout.is_zero() {
                let at = now.plus(self.limits.interest_timeout);
                self.timers.set(at, Timer::RetryMatch { participant: key, ticket });
            }
        }
        let position = self.queue_position(ticket);
        Ok(QueueStatus::Waiting {
            position,
            queue_length: self.queue.len(),
            estimated_wait_secs: self.estimate_wait(position),
        })
    }

    /// 1-based position of `ticket` in the queue.
    pub(crate) fn queue_position(&self, ticket: u64) -> usize {
        self.queue.range(..=ticket).count()
    }

    /// Seconds until a participant at `position` is likely matched, from the recent rate.
    fn estimate_wait(&self, position: usize) -> Option<u64> {
        let oldest = *self.recent_matches.front()?;
        if self.recent_matches.len() < 2 {
            return None;
        }
        let span_ms = self.now.since(oldest).as_millis().max(1000) as u64;
        let per_match_ms = span_ms / self.recent_matches.len() as u64;
        Some((per_match_ms * position as u64).div_ceil(1000))
    }

    /// Removes a participant from the queue; returns whether it was queued.
    pub(crate) fn leave_queue_of(&mut self, key: u64) -> bool {
        let Some(p) = self.participants.get_mut(&key) else { return false };
        let Activity::Queued { ticket, .. } = p.activity else { return false };
        p.activity = Activity::Idle;
        self.queue.remove(&ticket);
        true
    }

    /// Puts participant `key` back in the queue under its old `ticket` (its place), as
    /// when it waited since `since`, and looks for a partner.
    pub(crate) fn requeue(&mut self, key: u64, ticket: u64, since: Time) {
        let Some(p) = self.participants.get_mut(&key) else { return };
        if p.activity != Activity::Idle || self.queue.contains_key(&ticket) {
            return;
        }
        p.activity = Activity::Queued { ticket, since };
        let interest_until = (!p.interests.is_empty()).then(|| since.plus(self.limits.interest_timeout));
        self.queue.insert(ticket, key);
        if let Some(at) = interest_until.filter(|at| *at > self.now) {
            self.timers.set(at, Timer::RetryMatch { participant: key, ticket });
        }
        self.try_match(key);
    }

    /// Looks for a partner for queued participant `key`: the earliest waiting participant
    /// sharing an interest, else the earliest one both sides are willing to take (no
    /// interests, or interest timeout passed). Never a blocked or cooling-down pair.
    pub(crate) fn try_match(&mut self, key: u64) -> Option<u64> {
        let now = self.now;
        let me = self.participants.get(&key)?;
        let willing = |p: &Participant| match p.activity {
            Activity::Queued { since, .. } => {
                p.interests.is_empty() || now.since(since) >= self.limits.interest_timeout
            }
            _ => false,
        };
        let me_willing = willing(me);
        let mut fallback = None;
        let mut chosen = None;
        let mut retry_at: Option<Time> = None;
        for &other in self.queue.values() {
            if other == key {
                continue;
            }
            let Some(o) = self.participants.get(&other) else { continue };
            if !me.may_pair_with(o, now) {
                if let Some(until) = cooldown_between(me, o, now) {
                    retry_at = Some(retry_at.map_or(until, |t| t.min(until)));
                }
                continue;
            }
            if !me.interests.is_empty() && o.interests.iter().any(|i| me.interests.contains(i)) {
                chosen = Some(other);
                break;
            }
            if fallback.is_none() && me_willing && willing(o) {
                fallback = Some(other);
                if me.interests.is_empty() {
                    break;
                }
            }
        }
        let Some(partner) = chosen.or(fallback) else {
            if let (Some(at), Activity::Queued { ticket, .. }) = (retry_at, me.activity) {
                self.timers.set(at, Timer::RetryMatch { participant: key, ticket });
            }
            return None;
        };
        Some(self.open_room(partner, key))
    }

    /// Creates a room for two queued participants (`first` waited longer) and tells both.
    fn open_room(&mut self, first: u64, second: u64) -> u64 {
        self.leave_queue_of(first);
        self.leave_queue_of(second);
        let (room, id) = loop {
            let (n, id) = self.ids.tagged("r_");
            if !self.rooms.contains_key(&n) {
                break (n, id);
            }
        };
        let (a, b) = (&self.participants[&first], &self.participants[&second]);
        let shared: Vec<Arc<str>> = b.interests.iter().filter(|i| a.interests.contains(i)).cloned().collect();
        let (info_a, info_b) = (info(a), info(b));
        self.rooms.insert(room, Room::new(id.clone(), [first, second], shared.clone()));
        for (me, partner) in [(first, info_b), (second, info_a)] {
            if let Some(p) = self.participants.get_mut(&me) {
                p.activity = Activity::Chatting { room };
            }
            let found = ChatroomFound { room_id: id.clone(), partner, shared_interests: shared.clone() };
            self.emit(me, Event::ChatroomFound(found), None);
        }
        self.recent_matches.push_back(self.now);
        let horizon = self.limits.match_rate_window;
        while self.recent_matches.len() > RECENT_MATCHES
            || self.recent_matches.front().is_some_and(|&t| self.now.since(t) > horizon)
        {
            self.recent_matches.pop_front();
        }
        self.stats.rooms_created += 1;
        self.stats.rooms_active += 1;
        room
    }

    /// The other member of `room`, as seen by `me`.
    pub(crate) fn partner_info(&self, room: &Room, me: &Participant) -> PartnerInfo {
        room.members
            .iter()
            .filter_map(|k| self.participants.get(k))
            .find(|p| p.id != me.id)
            .map(info)
            .unwrap_or_else(|| PartnerInfo { user_id: "unknown".into(), display_name: "unknown".into() })
    }

    /// Resolves a room id for a member: unknown rooms and rooms of others give the same
    /// error, so room ids reveal nothing. Returns the room key and the member index.
    fn member_room(&self, key: u64, room_id: &str) -> Result<(u64, usize), ChatError> {
        let unknown = || ChatError::UnknownRoom { room_id: room_id.chars().take(80).collect() };
        let room = parse_room_id(room_id).ok_or_else(unknown)?;
        let index = self.rooms.get(&room).and_then(|r| r.member_index(key)).ok_or_else(unknown)?;
        Ok((room, index))
    }

    /// Like `member_room`, but the room must still be active.
    fn active_room(&self, key: u64, room_id: &str) -> Result<(u64, usize), ChatError> {
        let (room, index) = self.member_room(key, room_id)?;
        match self.rooms.get(&room) {
            Some(r) if r.is_active() => Ok((room, index)),
            _ => Err(ChatError::RoomEnded { room_id: room_id.to_string() }),
        }
    }

    /// `SendRoom`: the hot path, so it looks the room and the sender up once each.
    pub(crate) fn send_room(
        &mut self,
        key: u64,
        room_id: &str,
        message: String,
    ) -> Result<SentRoomReply, ChatError> {
        let unknown = || ChatError::UnknownRoom { room_id: room_id.chars().take(80).collect() };
        let room = parse_room_id(room_id).ok_or_else(unknown)?;
        let r = self.rooms.get_mut(&room).ok_or_else(unknown)?;
        let index = r.member_index(key).ok_or_else(unknown)?;
        if !r.is_active() {
            return Err(ChatError::RoomEnded { room_id: room_id.to_string() });
        }
        validate_message(&message, &self.limits)?;
        let now = self.now;
        let sender = self.participants.get_mut(&key).ok_or(ChatError::NotIdentified)?;
        rate_check(sender, now, &self.limits)?;
        let (from, from_name) = (sender.id.clone(), sender.name.clone());
        let message_id = self.ids.message_id();
        r.sent += 1;
        r.typing[index] = None;
        let seq = r.sent;
        let room_name = r.id.clone();
        let received = MessageReceived {
            room_id: Some(room_name.clone()),
            message_id,
            from,
            from_name,
            message,
            timestamp: now,
        };
        let partner = self.participants.get_mut(&r.members[1 - index]).ok_or(ChatError::NotIdentified)?;
        let envelope = self.outbox.deliver(partner, Event::MessageReceived(received), None, &self.limits);
        r.record(seq, envelope, self.limits.history_per_room, self.limits.history_bytes);
        self.stats.messages_relayed += 1;
        Ok(SentRoomReply { room_id: room_name, message_id, seq, timestamp: now })
    }

    /// `LeaveChat`: ends the room (if still active) and optionally requeues.
    pub(crate) fn leave_chat(
        &mut self,
        key: u64,
        room_id: &str,
        requeue: bool,
    ) -> Result<LeftChatReply, ChatError> {
        let (room, _) = self.member_room(key, room_id)?;
        let was_active = self.rooms.get(&room).is_some_and(Room::is_active);
        if was_active {
            self.end_room(room, DisconnectReason::Left, Some(key));
        }
        let requeued = if requeue { Some(self.enqueue(key)?) } else { None };
        let room_id = self.rooms.get(&room).map(|r| r.id.clone()).unwrap_or_else(|| room_id.into());
        Ok(LeftChatReply { room_id, was_active, requeued })
    }

    /// Ends the room `key` is chatting in, if any; the partner is told `reason`.
    pub(crate) fn end_room_of(&mut self, key: u64, reason: DisconnectReason) {
        if let Some(Activity::Chatting { room }) = self.participants.get(&key).map(|p| p.activity) {
            self.end_room(room, reason, Some(key));
        }
    }

    /// Ends an active room. Every member except `leaver` gets `partner.disconnected`;
    /// both become idle and are kept apart for the rematch cooldown.
    pub(crate) fn end_room(&mut self, room: u64, reason: DisconnectReason, leaver: Option<u64>) {
        self.end_room_undelivered(room, reason, leaver, Vec::new());
    }

    /// [`Chat::end_room`], telling the member who stays which of its messages never
    /// reached the `leaver`.
    pub(crate) fn end_room_undelivered(
        &mut self,
        room: u64,
        reason: DisconnectReason,
        leaver: Option<u64>,
        undelivered: Vec<MessageId>,
    ) {
        let now = self.now;
        let Some(r) = self.rooms.get_mut(&room) else { return };
        if !r.is_active() {
            return;
        }
        r.ended = Some((now, reason));
        r.typing = [None, None];
        r.shrink_history(self.limits.ended_history_bytes);
        let (members, room_id) = (r.members, r.id.clone());
        let ids: Vec<Arc<str>> = members
            .iter()
            .map(|k| self.participants.get(k).map(|p| p.id.clone()).unwrap_or_default())
            .collect();
        let cooldown_until = now.plus(self.limits.rematch_cooldown);
        for (i, member) in members.into_iter().enumerate() {
            if let Some(p) = self.participants.get_mut(&member) {
                if p.activity == (Activity::Chatting { room }) {
                    p.activity = Activity::Idle;
                }
                p.cooldown = Some((ids[1 - i].clone(), cooldown_until));
            }
        }
        for member in members {
            if Some(member) != leaver {
                let event = PartnerDisconnected {
                    room_id: room_id.clone(),
                    reason,
                    undelivered: undelivered.clone(),
                };
                self.emit(member, Event::PartnerDisconnected(event), None);
            }
        }
        self.stats.rooms_active -= 1;
        self.timers.set(now.plus(self.limits.history_retention), Timer::ForgetRoom { room });
    }

    /// `SetTyping`: only changes of state notify the partner; `true` while already typing
    /// just extends the indicator. It clears itself after `typing_timeout`.
    pub(crate) fn set_typing(
        &mut self,
        key: u64,
        room_id: &str,
        typing: bool,
    ) -> Result<TypingReply, ChatError> {
        let (room, index) = self.active_room(key, room_id)?;
        let now = self.now;
        let until = now.plus(self.limits.typing_timeout);
        let r = self.rooms.get_mut(&room).ok_or(ChatError::NotIdentified)?;
        let was_typing = r.typing[index].is_some();
        r.typing[index] = typing.then_some(Typing { until });
        let (room_name, partner) = (r.id.clone(), r.members[1 - index]);
        let notified = was_typing != typing;
        if typing && !was_typing {
            self.timers.set(until, Timer::Typing { room, member: index });
        }
        if notified {
            let event = PartnerTyping { room_id: room_name.clone(), typing };
            self.emit(partner, Event::PartnerTyping(event), None);
        }
        Ok(TypingReply { room_id: room_name, typing, notified })
    }

    /// A typing timer fired: clear the indicator if it was not refreshed.
    pub(crate) fn typing_timeout(&mut self, room: u64, member: usize) {
        let now = self.now;
        let Some(r) = self.rooms.get_mut(&room) else { return };
        let Some(t) = r.typing[member] else { return };
        if t.until > now {
            self.timers.set(t.until, Timer::Typing { room, member });
            return;
        }
        r.typing[member] = None;
        let event = PartnerTyping { room_id: r.id.clone(), typing: false };
        let partner = r.members[1 - member];
        self.emit(partner, Event::PartnerTyping(event), None);
    }

    /// `BlockPartner`: ends the room if active (partner told `left`), files a report and
    /// keeps the two apart for good. Works on a room that already ended, too.
    pub(crate) fn block_partner(
        &mut self,
        key: u64,
        room_id: &str,
        reason: Option<&str>,
    ) -> Result<BlockedReply, ChatError> {
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .map(|r| clean_label("reason", r, self.limits.max_reason_chars))
            .transpose()?;
        let (room, index) = self.member_room(key, room_id)?;
        self.end_room(room, DisconnectReason::Left, Some(key));
        let r = self.rooms.get(&room).ok_or(ChatError::NotIdentified)?;
        let room_name = r.id.clone();
        let other = r.members[1 - index];
        let blocked = self.participants.get(&other).map(|p| p.id.clone()).unwrap_or_default();
        let me = self.participants.get_mut(&key).ok_or(ChatError::NotIdentified)?;
        if !me.blocked.contains(&blocked) {
            me.blocked.push(blocked.clone());
        }
        let report = Report {
            reporter: me.id.clone(),
            reported: blocked.clone(),
            room_id: room_name.clone(),
            reason,
            at: self.now,
        };
        if self.reports.len() >= self.limits.max_reports {
            self.reports.pop_front();
        }
        if self.limits.max_reports > 0 {
            self.reports.push_back(report);
        }
        self.stats.reports += 1;
        Ok(BlockedReply { room_id: room_name, blocked_user_id: blocked })
    }

    /// `History`: the room's kept messages, for its two members only.
    pub(crate) fn history(&self, key: u64, room_id: &str) -> Result<HistoryReply, ChatError> {
        let (room, _) = self.member_room(key, room_id)?;
        let r = self.rooms.get(&room).ok_or(ChatError::NotIdentified)?;
        let me = self.participants.get(&key).ok_or(ChatError::NotIdentified)?;
        Ok(HistoryReply {
            room_id: r.id.clone(),
            active: r.is_active(),
            ended_reason: r.ended.map(|(_, reason)| reason),
            partner: self.partner_info(r, me),
            messages: r.history.iter().filter_map(|(seq, e)| history_entry(*seq, e)).collect(),
            omitted: r.sent - r.history.len() as u64,
        })
    }
}

/// A history line from the envelope that carried the message.
fn history_entry(seq: u64, envelope: &Envelope) -> Option<HistoryEntry> {
    match &envelope.event {
        Event::MessageReceived(m) => Some(HistoryEntry {
            seq,
            message_id: m.message_id,
            from: m.from.clone(),
            from_name: m.from_name.clone(),
            message: m.message.clone(),
            timestamp: m.timestamp,
        }),
        _ => None,
    }
}

fn info(p: &Participant) -> PartnerInfo {
    PartnerInfo { user_id: p.id.clone(), display_name: p.name.clone() }
}

/// When the cooldown keeping `a` and `b` apart ends, if one is in force.
fn cooldown_between(a: &Participant, b: &Participant, now: Time) -> Option<Time> {
    [(a, b), (b, a)]
        .into_iter()
        .filter_map(|(x, y)| {
            x.cooldown.as_ref().filter(|(id, until)| *id == y.id && now < *until).map(|(_, until)| *until)
        })
        .max()
}

/// Takes one message from the sender's rate limit.
pub(crate) fn rate_check(
    p: &mut Participant,
    now: Time,
    limits: &crate::config::Limits,
) -> Result<(), ChatError> {
    p.rate.try_take(now, limits.rate_messages, limits.rate_window).map_err(|retry_after_ms| {
        ChatError::RateLimited {
            limit: limits.rate_messages,
            window_secs: limits.rate_window.as_secs(),
            retry_after_ms,
        }
    })
}
