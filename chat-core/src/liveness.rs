//! Whether a session's client is still there: the core's liveness model.
//!
//! A transport session (an MCP session, a connection) is not one socket. A client holds
//! streams (an SSE stream, a WebSocket) and makes requests, and any of them may break and
//! come back. The adapter reports what it sees as inputs, and the core decides, with its
//! own timers, what they mean:
//!
//! - [`Chat::hold`] / [`Chat::release`]: a stream opened or closed, a long request began
//!   or ended. A session with a hold is alive.
//! - [`Chat::touch`] (and every [`Chat::handle`]): the client made a request.
//!
//! A session with no hold goes *silent* after its last sign of life. It is **lost** once
//! the silence lasts its window:
//!
//! | the session…                                  | window                 |
//! | --------------------------------------------- | ---------------------- |
//! | has held a stream                             | `Limits::stream_grace` |
//! | never held one and made more than one request | `Limits::session_idle_timeout` |
//! | never held one and made a single request      | `Limits::single_call_timeout` |
//! | is leased (see below)                         | `Limits::lease`        |
//!
//! A *leased* session has no transport session behind it (MCP 2026-07-28 has none): the
//! client names it by its key, a handle passed with every call. Its client is there while
//! it holds something (a listen stream, a waiting call) or made a request within the
//! lease; it is never a single-call session, so a lapsed lease is a lost connection with
//! the reconnect grace like any other.
//!
//! A lost session is not over: a participant bound to it starts its reconnect grace (the
//! partner gets `partner.reconnecting`), and any sign of life from the same session within
//! the grace brings everything back (the partner gets `partner.reconnected`, the events
//! stored meanwhile are pushed again, a queue place is restored). Only when the grace
//! runs out does the room end (`partner.disconnected`, `timeout`, with the messages that
//! never reached the participant) and the session **expire**: the adapter drains expired
//! sessions with [`Chat::poll_expired`] and forgets them (an MCP server answers `404`
//! from then on).
//!
//! A single-call session (a host that opens a session per call, a script) gets no
//! reconnect grace: when it goes silent its room ends and its identity goes offline at
//! once, so a one-shot client holds neither the queue nor an identity hostage.
//!
//! The window starts when the session opens: a session that is never used at all (no
//! request, no hold) counts as a single-call one and ends `Limits::single_call_timeout`
//! after it opened, so a loop that opens sessions and never uses them cannot pile them up.

use crate::chat::Chat;
use crate::event::{Event, PartnerReconnected, PartnerReconnecting};
use crate::ids::SessionId;
use crate::participant::{Activity, Presence};
use crate::time::Time;
use crate::timers::Timer;

/// What keeps a session alive while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// A stream to the client is open (an SSE GET stream).
    Stream,
    /// A request is being served (a blocking wait).
    Request,
}

/// Whether a session's client is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Liveness {
    /// Holding something, or silent for less than its window.
    Live,
    /// Silent past its window since `since`; it may still come back.
    Lost { since: Time },
}

/// The core's record of one session.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Session {
    /// The participant bound to it, if any.
    pub(crate) bound: Option<u64>,
    /// The identity another session took from it with the token (for a clear error).
    pub(crate) taken_over: Option<std::sync::Arc<str>>,
    pub(crate) liveness: Liveness,
    /// Streams open plus requests in flight.
    holds: u32,
    /// Whether it ever held a stream: then a silence means a broken connection soon.
    streamed: bool,
    /// Requests made (saturating).
    requests: u32,
    /// The last sign of life (a request, or a hold released).
    last_active: Time,
    /// The deadline of the pending silence check, if one is armed (one at a time).
    check_at: Option<Time>,
    /// Bumped when the session is lost or comes back, so stale timers can tell.
    generation: u64,
    /// The adapter's name for the session (an `Mcp-Session-Id`), if it gave one: the
    /// mapping is core state, so a session is found again after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<std::sync::Arc<str>>,
    /// What the adapter wants to remember about the session (its protocol revision),
    /// opaque to the core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) meta: Option<std::sync::Arc<str>>,
    /// Resources the client subscribed to (URIs), opaque to the core.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub(crate) subscriptions: std::collections::BTreeSet<std::sync::Arc<str>>,
    /// Whether it is leased (see the module docs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) leased: bool,
}

impl Session {
    pub(crate) fn new(now: Time) -> Self {
        Session {
            bound: None,
            taken_over: None,
            liveness: Liveness::Live,
            holds: 0,
            streamed: false,
            requests: 0,
            last_active: now,
            check_at: None,
            generation: 0,
            key: None,
            meta: None,
            subscriptions: std::collections::BTreeSet::new(),
            leased: false,
        }
    }

    fn is_single_call(&self) -> bool {
        !self.leased && !self.streamed && self.requests <= 1
    }
}

impl Chat {
    /// The client of `session` holds something open (`what`): it is alive until the
    /// matching [`Chat::release`]. Brings a lost session back. Unknown sessions are
    /// ignored.
    pub fn hold(&mut self, now: Time, session: SessionId, what: Hold) {
        self.tick(now);
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.holds = s.holds.saturating_add(1);
        // A request is counted by the call it carries (`handle`, `touch`), not here.
        s.streamed |= what == Hold::Stream;
        s.last_active = self.now;
        self.come_back(session);
    }

    /// The hold `what` of `session` ended (its stream closed, its request finished). When
    /// nothing is held any more, the silence window starts.
    pub fn release(&mut self, now: Time, session: SessionId, _what: Hold) {
        self.tick(now);
        self.release_many(session, 1);
    }

    /// `count` holds of `session` ended now.
    pub(crate) fn release_many(&mut self, session: SessionId, count: u32) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.holds = s.holds.saturating_sub(count);
        s.last_active = self.now;
        self.arm_silence(session);
    }

    /// The client of `session` made a request that is not a [`crate::Command`] (a ping,
    /// a listing, a resource read). Brings a lost session back.
    pub fn touch(&mut self, now: Time, session: SessionId) {
        self.tick(now);
        self.activity(session);
    }

    /// `session` just opened: its silence window starts now (see the module docs).
    pub(crate) fn session_opened(&mut self, session: SessionId) {
        self.arm_silence(session);
    }

    /// Whether `session` is known and not lost.
    pub fn is_live(&self, session: SessionId) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.liveness == Liveness::Live)
    }

    /// The next session the core ended by itself (lost and not back within the reconnect
    /// grace, or a silent single-call session). The adapter forgets it.
    pub fn poll_expired(&mut self) -> Option<SessionId> {
        self.expired.pop_front()
    }

    /// A request of `session` now: counts it and brings the session back if lost.
    pub(crate) fn activity(&mut self, session: SessionId) {
        let now = self.now;
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.requests = s.requests.saturating_add(1);
        s.last_active = now;
        if s.liveness == Liveness::Live {
            self.arm_silence(session);
        } else {
            self.come_back(session);
        }
    }

    /// Makes `session` (just opened) a leased one: its window is [`crate::Limits::lease`].
    pub(crate) fn lease_session(&mut self, session: SessionId) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.leased = true;
        // The window of a fresh session was the single-call one; arm the lease's.
        s.check_at = None;
        s.generation += 1;
        self.arm_silence(session);
    }

    /// Whether `session` is a leased one.
    pub fn is_leased(&self, session: SessionId) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.leased)
    }

    fn window(&self, s: &Session) -> std::time::Duration {
        if s.leased {
            self.limits.lease
        } else if s.streamed {
            self.limits.stream_grace
        } else if s.is_single_call() {
            self.limits.single_call_timeout
        } else {
            self.limits.session_idle_timeout
        }
    }

    /// Makes sure a silence check is due by the end of the session's window, if it holds
    /// nothing. One check counts per session (`check_at`): a request only moves the end
    /// of the window later, and the check that finds the session active again re-arms
    /// itself for the new end, so a busy session costs one timer, not one per request. A
    /// window that got shorter (the session opened a stream) arms an earlier check; the
    /// later one is then ignored when it fires.
    fn arm_silence(&mut self, session: SessionId) {
        let Some(s) = self.sessions.get(&session) else { return };
        if s.holds > 0 || s.liveness != Liveness::Live {
            return;
        }
        let at = s.last_active.plus(self.window(s));
        if s.check_at.is_some_and(|armed| armed <= at) {
            return;
        }
        let generation = s.generation;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.check_at = Some(at);
        }
        self.timers.set(at, Timer::Silence { session, generation, at });
    }

    /// A silence check armed for `at` is due.
    pub(crate) fn check_silence(&mut self, session: SessionId, generation: u64, at: Time) {
        let now = self.now;
        let window = match self.sessions.get(&session) {
            Some(s) if s.generation == generation && s.check_at == Some(at) => self.window(s),
            _ => return,
        };
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.check_at = None;
        if s.holds > 0 || s.liveness != Liveness::Live {
            return;
        }
        if now < s.last_active.plus(window) {
            self.arm_silence(session);
            return;
        }
        if s.is_single_call() {
            self.end_single_call(session);
        } else {
            self.lose(session);
        }
    }

    /// The session went silent past its window: its participant starts the reconnect
    /// grace; an unbound session simply expires after the same grace.
    fn lose(&mut self, session: SessionId) {
        let now = self.now;
        let grace = self.limits.reconnect_grace;
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.liveness = Liveness::Lost { since: now };
        s.generation += 1;
        s.check_at = None;
        let (bound, generation) = (s.bound, s.generation);
        match bound.filter(|key| self.is_online_on(*key, session)) {
            Some(key) => self.start_grace(key, Some(session)),
            None => self.timers.set(now.plus(grace), Timer::ExpireSession { session, generation }),
        }
    }

    fn is_online_on(&self, key: u64, session: SessionId) -> bool {
        self.participants.get(&key).is_some_and(|p| p.presence == Presence::Online(session))
    }

    /// Participant `key` lost its connection: it leaves the queue (remembering its
    /// place), keeps its room for the reconnect grace, and its partner is told.
    pub(crate) fn start_grace(&mut self, key: u64, session: Option<SessionId>) {
        let now = self.now;
        let grace = self.limits.reconnect_grace;
        let Some(p) = self.participants.get(&key) else { return };
        let queued = match p.activity {
            Activity::Queued { ticket, since } => Some((ticket, since)),
            _ => None,
        };
        let seq = p.inbox.last_seq();
        let room = match p.activity {
            Activity::Chatting { room } => Some(room),
            _ => None,
        };
        self.leave_queue_of(key);
        let presence = Presence::Reconnecting { since: now, session, seq, queued };
        let generation = self.set_presence(key, presence);
        self.timers.set(now.plus(grace), Timer::Grace { participant: key, generation });
        if let Some((partner, room_id)) = room.and_then(|room| self.partner_in(room, key)) {
            let event = PartnerReconnecting { room_id, reconnect_by: now.plus(grace) };
            self.emit(partner, Event::PartnerReconnecting(event), None);
        }
    }

    /// A sign of life from a lost session: it is live again, and so is its participant
    /// if the grace has not run out (its partner is told, its queue place comes back, and
    /// the events stored while it was away are pushed).
    fn come_back(&mut self, session: SessionId) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        if s.liveness == Liveness::Live {
            return;
        }
        s.liveness = Liveness::Live;
        s.generation += 1;
        s.check_at = None;
        let bound = s.bound;
        self.arm_silence(session);
        let Some(key) = bound else { return };
        let Some(p) = self.participants.get(&key) else { return };
        if !matches!(p.presence, Presence::Reconnecting { session: Some(s), .. } if s == session) {
            return;
        }
        self.reattach(session, key);
    }

    /// Makes a reconnecting (or offline) participant online on `session` again: restores
    /// its queue place, tells its partner, and pushes what it may have missed.
    pub(crate) fn reattach(&mut self, session: SessionId, key: u64) {
        let Some(p) = self.participants.get(&key) else { return };
        let previous = p.presence;
        self.set_presence(key, Presence::Online(session));
        if let Some(s) = self.sessions.get_mut(&session) {
            s.bound = Some(key);
        }
        let missed_after = match previous {
            Presence::Reconnecting { seq, .. } => seq,
            _ => u64::MAX,
        };
        if let Some(p) = self.participants.get(&key) {
            let id = p.id.clone();
            self.outbox.repush(session, &id, p.inbox.missed(missed_after));
        }
        if matches!(previous, Presence::Reconnecting { .. })
            && let Some(Activity::Chatting { room }) = self.participants.get(&key).map(|p| p.activity)
            && let Some((partner, room_id)) = self.partner_in(room, key)
        {
            self.emit(partner, Event::PartnerReconnected(PartnerReconnected { room_id }), None);
        }
        if let Presence::Reconnecting { queued: Some((ticket, since)), .. } = previous {
            self.requeue(key, ticket, since);
        }
    }

    /// The other member of active room `room` and the room's id, as seen by `key`.
    fn partner_in(&self, room: u64, key: u64) -> Option<(u64, std::sync::Arc<str>)> {
        let r = self.rooms.get(&room).filter(|r| r.is_active())?;
        let i = r.member_index(key)?;
        Some((r.members[1 - i], r.id.clone()))
    }

    /// A single-call session went silent: its room ends and its identity goes offline
    /// at once, and the session expires.
    fn end_single_call(&mut self, session: SessionId) {
        if let Some(key) = self.sessions.get(&session).and_then(|s| s.bound)
            && self.is_online_on(key, session)
        {
            self.leave_queue_of(key);
            self.end_room_of(key, crate::event::DisconnectReason::Timeout);
            self.go_offline(key);
        }
        self.expire(session);
    }

    /// An unbound lost session's grace ran out.
    pub(crate) fn expire_if_lost(&mut self, session: SessionId, generation: u64) {
        let due = self
            .sessions
            .get(&session)
            .is_some_and(|s| s.generation == generation && matches!(s.liveness, Liveness::Lost { .. }));
        if due {
            self.expire(session);
        }
    }

    /// Forgets a session the core ended and reports it through [`Chat::poll_expired`].
    pub(crate) fn expire(&mut self, session: SessionId) {
        if let Some(record) = self.sessions.remove(&session) {
            self.unkey(&record);
            self.forget_node_holds(session);
            self.expired.push_back(session);
        }
    }

    /// The process serving the chat restarted (it was stopped or crashed, and the state
    /// was restored): every stream and request of that process is gone, and the outage
    /// was the server's, not the clients'. So every session starts its silence window
    /// afresh from `now` (holds cleared), every session that was already lost and every
    /// participant in its reconnect grace gets a fresh grace (partners get a new
    /// `partner.reconnecting` with the new deadline), and then due timers run (a direct
    /// message that expired meanwhile is reported).
    pub fn recover(&mut self, now: Time) {
        self.advance(now);
        let now = self.now;
        let grace = self.limits.reconnect_grace;
        let mut sessions: Vec<SessionId> = self.sessions.keys().copied().collect();
        sessions.sort_unstable();
        self.clear_node_holds();
        for session in sessions {
            let Some(s) = self.sessions.get_mut(&session) else { continue };
            s.holds = 0;
            s.last_active = now;
            match s.liveness {
                Liveness::Live => self.arm_silence(session),
                Liveness::Lost { .. } => {
                    s.liveness = Liveness::Lost { since: now };
                    s.generation += 1;
                    s.check_at = None;
                    let (bound, generation) = (s.bound, s.generation);
                    if bound.is_none_or(|key| !self.is_reconnecting_on(key, session)) {
                        self.timers.set(now.plus(grace), Timer::ExpireSession { session, generation });
                    }
                }
            }
        }
        let mut waiting: Vec<(u64, Presence)> = self
            .participants
            .iter()
            .filter(|(_, p)| matches!(p.presence, Presence::Reconnecting { .. }))
            .map(|(key, p)| (*key, p.presence))
            .collect();
        waiting.sort_unstable_by_key(|(key, _)| *key);
        for (key, presence) in waiting {
            let Presence::Reconnecting { session, seq, queued, .. } = presence else { continue };
            let generation =
                self.set_presence(key, Presence::Reconnecting { since: now, session, seq, queued });
            self.timers.set(now.plus(grace), Timer::Grace { participant: key, generation });
            if let Some(Activity::Chatting { room }) = self.participants.get(&key).map(|p| p.activity)
                && let Some((partner, room_id)) = self.partner_in(room, key)
            {
                let event = PartnerReconnecting { room_id, reconnect_by: now.plus(grace) };
                self.emit(partner, Event::PartnerReconnecting(event), None);
            }
        }
        self.tick(now);
    }

    fn is_reconnecting_on(&self, key: u64, session: SessionId) -> bool {
        self.participants.get(&key).is_some_and(
            |p| matches!(p.presence, Presence::Reconnecting { session: Some(s), .. } if s == session),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Config, Limits};
    use crate::{Chat, Hold, Time};

    fn chat() -> Chat {
        let limits = Limits { single_call_timeout: Duration::from_secs(10), ..Limits::default() };
        Chat::new(Config { seed: [7; 32], limits, registered: Vec::new() })
    }

    #[test]
    fn a_session_that_is_never_used_ends_after_the_single_call_timeout() {
        let mut chat = chat();
        let unused = chat.open_session(Time::from_millis(0));
        let streaming = chat.open_session(Time::from_millis(0));
        chat.hold(Time::from_millis(5), streaming, Hold::Stream);
        chat.tick(Time::from_millis(9_999));
        assert_eq!(chat.poll_expired(), None, "not before the window");
        chat.tick(Time::from_millis(10_000));
        assert_eq!(chat.poll_expired(), Some(unused));
        assert_eq!(chat.poll_expired(), None, "a session holding a stream stays");
        assert!(chat.is_live(streaming));
    }

    #[test]
    fn a_leased_session_is_lost_when_its_lease_lapses_and_expires_after_the_grace() {
        let limits = Limits {
            single_call_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            reconnect_grace: Duration::from_secs(30),
            ..Limits::default()
        };
        let mut chat = Chat::new(Config { seed: [7; 32], limits, registered: Vec::new() });
        let open = crate::Input::Open { key: Some("h".into()), meta: None, lease: true };
        let crate::Applied::Opened(leased) = chat.apply(Time::from_millis(0), open) else {
            panic!("not opened")
        };
        assert!(chat.is_leased(leased));
        chat.tick(Time::from_millis(20_000));
        assert!(chat.is_live(leased), "not a single-call session: the lease holds it");
        chat.touch(Time::from_millis(50_000), leased);
        chat.hold(Time::from_millis(51_000), leased, Hold::Stream);
        chat.tick(Time::from_millis(200_000));
        assert!(chat.is_live(leased), "a hold keeps it live past the lease");
        chat.release(Time::from_millis(200_000), leased, Hold::Stream);
        chat.tick(Time::from_millis(259_999));
        assert!(chat.is_live(leased), "a released hold leaves the lease, not the stream grace");
        chat.tick(Time::from_millis(260_000));
        assert!(!chat.is_live(leased), "lost once the lease lapses");
        assert_eq!(chat.poll_expired(), None, "a lost session is still a session");
        chat.tick(Time::from_millis(290_000));
        assert_eq!(chat.poll_expired(), Some(leased), "over after the reconnect grace");
    }
}
