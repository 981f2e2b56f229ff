//! [`Chat`]: the state machine and its public API.
//!
//! Commands come in through [`Chat::handle`], time through [`Chat::tick`], lost or ended
//! connections through [`Chat::session_closed`]. Events for participants with a live
//! session queue up as [`Outbound`]s that the adapter drains with [`Chat::poll_outbound`].
//! Nothing here reads a clock, does I/O or uses global randomness.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use foldhash::fast::FixedState;
use serde::Serialize;

use crate::command::Command;
use crate::config::{Config, Limits};
use crate::error::ChatError;
use crate::event::{Envelope, Event, Outbound};
use crate::ids::{Ids, SessionId};
use crate::liveness::{Liveness, Session};
use crate::participant::{Activity, Participant, Presence};
use crate::reply::Reply;
use crate::room::Room;
use crate::time::Time;
use crate::timers::{Timer, Timers};

/// A hash map with a hasher seeded from the config: deterministic for a given seed, and
/// not predictable by clients who choose the keys.
pub(crate) type Map<K, V> = HashMap<K, V, FixedState>;

/// Serializes a [`Map`] in key order: a snapshot is then the same bytes for the same
/// state, whatever history gave the map its iteration order (a restored map was filled
/// in a different order than the live one).
fn sorted<K: Ord + Serialize, V: Serialize, S: serde::Serializer>(
    map: &Map<K, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

/// How a session ended, as reported by the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// The client ended it on purpose (HTTP DELETE, Ctrl-C): the partner is told `left`
    /// at once.
    Closed,
    /// The connection was lost or went idle: the participant keeps its room for the
    /// reconnect grace, then the partner is told `timeout`.
    Lost,
}

/// Counters for health checks and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Open sessions.
    pub sessions: usize,
    /// Known participants (online or not).
    pub participants: usize,
    /// Participants with a live session.
    pub online: usize,
    /// Participants waiting in the queue.
    pub queued: usize,
    /// Rooms with two participants chatting.
    pub rooms_active: usize,
    /// Rooms ever created.
    pub rooms_created: u64,
    /// Room messages relayed.
    pub messages_relayed: u64,
    /// Direct messages accepted.
    pub direct_messages_sent: u64,
    /// Direct messages that expired unread.
    pub direct_messages_expired: u64,
    /// Events stored for participants.
    pub events_emitted: u64,
    /// Events dropped from full inboxes.
    pub events_evicted: u64,
    /// Approximate bytes held in every inbox (events and direct messages).
    pub inbox_bytes: u64,
    /// Reports filed with `BlockPartner`.
    pub reports: u64,
}

/// What the core keeps of a session for its adapter ([`Chat::session_record`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The adapter's key ([`Chat::open_keyed_session`]).
    pub key: Option<Arc<str>>,
    /// The adapter's opaque note about the session.
    pub meta: Option<Arc<str>>,
    /// Subscribed resource URIs ([`Chat::subscribe`]), sorted.
    pub subscriptions: Vec<Arc<str>>,
}

/// A report filed by `BlockPartner`, kept for moderators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    /// Who reported.
    pub reporter: Arc<str>,
    /// Who was blocked.
    pub reported: Arc<str>,
    /// The room it happened in.
    pub room_id: Arc<str>,
    /// The reporter's words, if any.
    pub reason: Option<Arc<str>>,
    /// When.
    pub at: Time,
}

/// The whole chat: sessions, participants, queue, rooms, inboxes, timers.
///
/// It serializes whole ([`Chat::snapshot`], [`Chat::restore`]): a snapshot plus the
/// inputs after it rebuild the state exactly.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Chat {
    pub(crate) limits: Limits,
    pub(crate) ids: Ids,
    /// Seed of the maps' hasher (drawn from `ids` at creation), so a restored core
    /// hashes as the original did.
    hash_seed: u64,
    /// The latest time seen; time handed in is never allowed to go backwards.
    pub(crate) now: Time,
    next_session: u64,
    pub(crate) next_participant: u64,
    /// Open sessions: the participant each is bound to, and whether its client is there.
    #[serde(serialize_with = "sorted")]
    pub(crate) sessions: Map<SessionId, Session>,
    /// Sessions by the adapter's key for them (see [`Chat::open_keyed_session`]).
    #[serde(default)]
    #[serde(serialize_with = "sorted")]
    pub(crate) by_key: Map<Arc<str>, SessionId>,
    /// Sessions the core ended by itself, for [`Chat::poll_expired`].
    pub(crate) expired: VecDeque<SessionId>,
    #[serde(serialize_with = "sorted")]
    pub(crate) participants: Map<u64, Participant>,
    #[serde(serialize_with = "sorted")]
    pub(crate) by_id: Map<Arc<str>, u64>,
    /// Ids of checked-in clients, sorted for `ListClients`.
    pub(crate) clients: BTreeSet<Arc<str>>,
    #[serde(serialize_with = "sorted")]
    pub(crate) rooms: Map<u64, Room>,
    /// The roulette queue: ticket (arrival order) -> participant.
    pub(crate) queue: BTreeMap<u64, u64>,
    pub(crate) next_ticket: u64,
    /// Times of recent matches, for the wait estimate.
    pub(crate) recent_matches: VecDeque<Time>,
    pub(crate) timers: Timers,
    /// Nodes serving the chat and the holds each reported (see `nodes.rs`); empty with
    /// one process.
    #[serde(default)]
    pub(crate) nodes: BTreeMap<u64, crate::nodes::Node>,
    pub(crate) outbox: Outbox,
    pub(crate) reports: VecDeque<Report>,
    pub(crate) stats: Stats,
}

/// Where stored events go besides the inbox: the push queue, the optional log, counters.
/// Separate from [`Chat`] so a command can hold a room and a participant mutably while
/// delivering.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Outbox {
    /// Pushes not yet drained: always empty between calls (adapters drain after each),
    /// so a snapshot carries none.
    #[serde(skip)]
    queue: VecDeque<Outbound>,
    /// Every stored event with its recipient, when enabled (see [`Chat::record_events`]).
    #[serde(skip)]
    log: Option<Vec<(Arc<str>, Arc<Envelope>)>>,
    emitted: u64,
    evicted: u64,
}

impl Outbox {
    /// Queues already-stored envelopes for push again (unread mail for a session that just
    /// bound the identity). Their seqs are unchanged, so clients dedupe them.
    pub(crate) fn repush<'a>(
        &mut self,
        session: SessionId,
        user_id: &Arc<str>,
        envelopes: impl Iterator<Item = &'a Arc<Envelope>>,
    ) {
        for envelope in envelopes {
            self.queue.push_back(Outbound { session, user_id: user_id.clone(), envelope: envelope.clone() });
        }
    }

    /// Stores `event` in `p`'s inbox and, if `p` is online, queues it for push.
    pub(crate) fn deliver(
        &mut self,
        p: &mut Participant,
        event: Event,
        direct_from: Option<u64>,
        limits: &Limits,
    ) -> Arc<Envelope> {
        let evicted_before = p.inbox.evicted_total();
        let envelope = p.inbox.push(event, direct_from, inbox_budget(p, limits)).clone();
        if let Some(log) = &mut self.log {
            log.push((p.id.clone(), envelope.clone()));
        }
        if let Presence::Online(session) = p.presence {
            self.queue.push_back(Outbound { session, user_id: p.id.clone(), envelope: envelope.clone() });
        }
        self.emitted += 1;
        self.evicted += p.inbox.evicted_total() - evicted_before;
        envelope
    }
}

impl Chat {
    /// A fresh chat. Everything random derives from `config.seed`.
    pub fn new(config: Config) -> Self {
        let mut ids = Ids::new(config.seed);
        let hash_seed = ids.next_u64();
        let hasher = FixedState::with_seed(hash_seed);
        let mut chat = Chat {
            limits: config.limits,
            ids,
            hash_seed,
            now: Time::ZERO,
            next_session: 0,
            next_participant: 0,
            sessions: Map::with_hasher(hasher.clone()),
            by_key: Map::with_hasher(hasher.clone()),
            expired: VecDeque::new(),
            participants: Map::with_hasher(hasher.clone()),
            by_id: Map::with_hasher(hasher.clone()),
            clients: BTreeSet::new(),
            rooms: Map::with_hasher(hasher.clone()),
            queue: BTreeMap::new(),
            next_ticket: 0,
            recent_matches: VecDeque::new(),
            timers: Timers::default(),
            nodes: BTreeMap::new(),
            outbox: Outbox::default(),
            reports: VecDeque::new(),
            stats: Stats::default(),
        };
        for client in config.registered {
            chat.register(client);
        }
        chat
    }

    /// Creates an operator-registered client: offline, never forgotten, its secret as
    /// its token. A malformed id is skipped (the adapter validates its input first).
    fn register(&mut self, client: crate::config::Registered) {
        if crate::ids::validate_id("client_id", &client.client_id, &self.limits).is_err()
            || self.by_id.contains_key(client.client_id.as_str())
        {
            return;
        }
        let id: Arc<str> = client.client_id.into();
        let name: Arc<str> = client.name.map_or_else(|| id.clone(), Arc::from);
        let Ok(key) = self.create_participant(id.clone(), name, Presence::Offline { since: self.now }) else {
            return;
        };
        if let Some(p) = self.participants.get_mut(&key) {
            p.token = client.secret.into();
            p.registered = true;
            p.client = Some(crate::participant::ClientMeta::default());
        }
        self.clients.insert(id);
    }

    /// The whole state as bytes (JSON): everything but pushes not yet drained, which
    /// adapters drain after every call. [`Chat::restore`] reads it back.
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("cannot write a snapshot: {e}"))
    }

    /// A core from a [`Chat::snapshot`]; it then behaves exactly as the one that wrote it.
    pub fn restore(bytes: &[u8]) -> Result<Chat, String> {
        let mut chat: Chat =
            serde_json::from_slice(bytes).map_err(|e| format!("not a valid snapshot: {e}"))?;
        let hasher = FixedState::with_seed(chat.hash_seed);
        fn reseed<K: std::hash::Hash + Eq, V>(map: &mut Map<K, V>, hasher: &FixedState) {
            let mut fresh = Map::with_capacity_and_hasher(map.len(), hasher.clone());
            fresh.extend(map.drain());
            *map = fresh;
        }
        reseed(&mut chat.sessions, &hasher);
        reseed(&mut chat.by_key, &hasher);
        reseed(&mut chat.participants, &hasher);
        reseed(&mut chat.by_id, &hasher);
        reseed(&mut chat.rooms, &hasher);
        Ok(chat)
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Registers a new connection. It has no identity until a command binds one.
    pub fn open_session(&mut self, now: Time) -> SessionId {
        self.open_keyed_session(now, None, None)
    }

    /// Registers a new connection under the adapter's `key` for it (an `Mcp-Session-Id`;
    /// [`Chat::session_by_key`] finds it again, also in a restored core) with the
    /// adapter's opaque `meta` about it. A key already in use is not reassigned: the new
    /// session then has none.
    pub fn open_keyed_session(
        &mut self,
        now: Time,
        key: Option<Arc<str>>,
        meta: Option<Arc<str>>,
    ) -> SessionId {
        self.advance(now);
        self.next_session += 1;
        let session = SessionId(self.next_session);
        let mut record = Session::new(self.now);
        if let Some(key) = key.filter(|k| !self.by_key.contains_key(k)) {
            self.by_key.insert(key.clone(), session);
            record.key = Some(key);
        }
        record.meta = meta;
        self.sessions.insert(session, record);
        self.session_opened(session);
        session
    }

    /// The open session the adapter named `key`, if any.
    pub fn session_by_key(&self, key: &str) -> Option<SessionId> {
        self.by_key.get(key).copied()
    }

    /// What the core keeps of an open session for its adapter.
    pub fn session_record(&self, session: SessionId) -> Option<SessionRecord> {
        let s = self.sessions.get(&session)?;
        Some(SessionRecord {
            key: s.key.clone(),
            meta: s.meta.clone(),
            subscriptions: s.subscriptions.iter().cloned().collect(),
        })
    }

    /// Every open session, in id order.
    pub fn session_ids(&self) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Records that `session`'s client subscribed to (`on`) or unsubscribed from the
    /// resource `uri`. The core does not interpret URIs; it keeps them with the session so
    /// they outlive the process.
    pub fn subscribe(&mut self, now: Time, session: SessionId, uri: Arc<str>, on: bool) {
        self.touch(now, session);
        let Some(s) = self.sessions.get_mut(&session) else { return };
        if on {
            s.subscriptions.insert(uri);
        } else {
            s.subscriptions.remove(&uri);
        }
    }

    /// Takes new limits and operator-registered clients (a restart with other settings):
    /// limits apply from now on; registered clients not known yet are created, and the
    /// secrets of known registered ones are updated.
    pub fn configure(&mut self, now: Time, limits: Limits, registered: Vec<crate::config::Registered>) {
        self.advance(now);
        self.limits = limits;
        for client in registered {
            let known = self.by_id.get(client.client_id.as_str()).copied();
            match known.and_then(|key| self.participants.get_mut(&key)) {
                Some(p) if p.registered => p.token = client.secret.into(),
                Some(_) => {}
                None => self.register(client),
            }
        }
    }

    pub(crate) fn unkey(&mut self, record: &Session) {
        if let Some(key) = &record.key {
            self.by_key.remove(key);
        }
    }

    /// Reports that a session is over, as the adapter decided (a session ending by
    /// silence is the core's own decision, see [`Chat::hold`]). [`SessionEnd::Closed`]
    /// ends its room at once (partner told `left`); [`SessionEnd::Lost`] keeps the room
    /// for the reconnect grace (partner told `partner.reconnecting`, then `timeout` when
    /// it runs out without a `Resume`). Either way the session is forgotten and the
    /// participant leaves the queue at once. Unknown sessions are ignored, so reporting
    /// twice is harmless.
    pub fn session_closed(&mut self, now: Time, session: SessionId, how: SessionEnd) {
        self.advance(now);
        let Some(record) = self.sessions.remove(&session) else { return };
        self.unkey(&record);
        self.forget_node_holds(session);
        let Some(key) = record.bound else { return };
        let Some(p) = self.participants.get(&key) else { return };
        let lost_here = matches!(p.presence, Presence::Reconnecting { session: Some(s), .. } if s == session);
        if lost_here {
            // Already in its reconnect grace; the session can no longer come back by
            // itself, only `Resume` can.
            if let Some(p) = self.participants.get_mut(&key)
                && let Presence::Reconnecting { session, .. } = &mut p.presence
            {
                *session = None;
            }
            if how == SessionEnd::Lost {
                return;
            }
        } else if p.presence != Presence::Online(session) {
            return;
        }
        self.leave_queue_of(key);
        let grace = self.limits.reconnect_grace;
        if how == SessionEnd::Lost && !grace.is_zero() {
            self.start_grace(key, None);
        } else {
            let reason = match how {
                SessionEnd::Closed => crate::event::DisconnectReason::Left,
                SessionEnd::Lost => crate::event::DisconnectReason::Timeout,
            };
            self.end_room_of(key, reason);
            self.go_offline(key);
        }
    }

    /// Carries out one command for `session`. Due timers run first, so the command sees
    /// the state as of `now`. Events it causes queue up for [`Chat::poll_outbound`].
    pub fn handle(&mut self, now: Time, session: SessionId, command: Command) -> Result<Reply, ChatError> {
        self.tick(now);
        let record = self.sessions.get(&session).ok_or(ChatError::UnknownSession)?;
        let bound = record.bound;
        // A command that needs an identity, on a session without one: say why.
        let missing = match &record.taken_over {
            Some(id) => ChatError::TakenOver { id: id.to_string() },
            None => ChatError::NotIdentified,
        };
        let need = |bound: Option<u64>| bound.ok_or_else(|| missing.clone());
        self.activity(session);
        if let Some(key) = bound
            && let Some(p) = self.participants.get_mut(&key)
        {
            p.last_seen = self.now;
        }
        match command {
            Command::EnterQueue { user_id, display_name, interests, resume_token } => self
                .enter_queue(
                    session,
                    user_id.as_deref(),
                    display_name.as_deref(),
                    &interests,
                    resume_token.as_deref(),
                )
                .map(Reply::EnterQueue),
            Command::LeaveQueue => {
                let key = need(bound)?;
                Ok(Reply::LeaveQueue(crate::reply::LeaveQueueReply { was_queued: self.leave_queue_of(key) }))
            }
            Command::SendRoom { room_id, message, client_message_id } => {
                let key = need(bound)?;
                self.once(key, client_message_id, |chat| {
                    chat.send_room(key, &room_id, message).map(Reply::SentRoom)
                })
            }
            Command::SendDirect { recipient_id, message, client_message_id } => {
                let key = need(bound)?;
                self.once(key, client_message_id, |chat| {
                    chat.send_direct(key, &recipient_id, message).map(Reply::SentDirect)
                })
            }
            Command::LeaveChat { room_id, requeue } => {
                self.leave_chat(need(bound)?, &room_id, requeue).map(Reply::LeftChat)
            }
            Command::SetTyping { room_id, typing } => {
                self.set_typing(need(bound)?, &room_id, typing).map(Reply::Typing)
            }
            Command::SetDirectTyping { recipient_id, typing } => {
                self.set_direct_typing(need(bound)?, &recipient_id, typing).map(Reply::DirectTyping)
            }
            Command::BlockPartner { room_id, reason } => {
                self.block_partner(need(bound)?, &room_id, reason.as_deref()).map(Reply::Blocked)
            }
            Command::History { room_id } => self.history(need(bound)?, &room_id).map(Reply::History),
            Command::Checkin { client_id, name, capabilities, resume_token } => self
                .checkin(session, &client_id, name.as_deref(), &capabilities, resume_token.as_deref())
                .map(Reply::CheckedIn),
            Command::ListClients => {
                need(bound)?;
                Ok(Reply::Clients(self.list_clients()))
            }
            Command::GetMessages { limit } => Ok(Reply::Messages(self.get_messages(need(bound)?, limit))),
            Command::PeekMessages => Ok(Reply::Messages(self.peek_messages(need(bound)?))),
            Command::TakeReply { from, after_seq } => {
                Ok(Reply::TakenReply(self.take_reply(need(bound)?, &from, after_seq)))
            }
            Command::Identity => Ok(Reply::Identity(self.identity(bound))),
            Command::Resume { user_id, resume_token } => {
                self.resume(session, &user_id, &resume_token).map(Reply::Identity)
            }
            Command::Events { after_seq, limit } => {
                self.events(need(bound)?, after_seq, limit).map(Reply::Events)
            }
        }
    }

    /// Acts on every deadline at or before `now`: reconnect graces, message expiry,
    /// typing timeouts, interest timeouts, forgetting old rooms and participants.
    pub fn tick(&mut self, now: Time) {
        self.advance(now);
        while let Some((_, timer)) = self.timers.pop_due(self.now) {
            self.fire(timer);
        }
    }

    /// The next time [`Chat::tick`] has work to do. Calling it earlier or later is safe;
    /// a deadline may turn out to need nothing.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    /// The next event to push to a live session, oldest first.
    pub fn poll_outbound(&mut self) -> Option<Outbound> {
        self.outbox.queue.pop_front()
    }

    /// Ends every active room with reason `shutdown` (both sides are told) and empties
    /// the queue. For a graceful server stop.
    pub fn shutdown(&mut self, now: Time) {
        self.advance(now);
        let mut active: Vec<u64> =
            self.rooms.iter().filter(|(_, r)| r.is_active()).map(|(&k, _)| k).collect();
        active.sort_unstable();
        for room in active {
            self.end_room(room, crate::event::DisconnectReason::Shutdown, None);
        }
        for key in std::mem::take(&mut self.queue).into_values() {
            if let Some(p) = self.participants.get_mut(&key) {
                p.activity = Activity::Idle;
            }
        }
    }

    /// The identity bound to `session`, if any.
    pub fn session_user(&self, session: SessionId) -> Option<&Arc<str>> {
        let key = self.sessions.get(&session)?.bound?;
        self.participants.get(&key).map(|p| &p.id)
    }

    /// What `Command::Identity` would answer for `session`, without counting as a
    /// request (for observers: tests, metrics, resources).
    pub fn peek_identity(&self, session: SessionId) -> crate::reply::IdentityReply {
        self.identity(self.sessions.get(&session).and_then(|s| s.bound))
    }

    /// Unacknowledged events of the participant bound to `session` (0 if none).
    pub fn pending_events(&self, session: SessionId) -> usize {
        self.session_participant(session).map_or(0, |p| p.inbox.len())
    }

    /// Up to `limit` unacknowledged events of the participant bound to `session`, oldest
    /// first, without acknowledging anything or touching the eviction count (unlike
    /// `Command::Events`). For read-only views such as an inbox resource.
    pub fn peek_events(&self, session: SessionId, limit: usize) -> Vec<Arc<Envelope>> {
        self.session_participant(session).map_or_else(Vec::new, |p| p.inbox.after(0, limit))
    }

    /// Seq of the newest event of the participant bound to `session` (0 if none): the
    /// cursor to pass to `TakeReply` / `Events` for "anything after now".
    pub fn event_cursor(&self, session: SessionId) -> u64 {
        self.session_participant(session).map_or(0, |p| p.inbox.last_seq())
    }

    /// Counters for health checks and metrics.
    pub fn stats(&self) -> Stats {
        Stats {
            sessions: self.sessions.len(),
            participants: self.participants.len(),
            online: self
                .sessions
                .values()
                .filter(|s| s.bound.is_some() && s.liveness == Liveness::Live)
                .count(),
            queued: self.queue.len(),
            events_emitted: self.outbox.emitted,
            events_evicted: self.outbox.evicted,
            inbox_bytes: self.participants.values().map(|p| p.inbox.bytes() as u64).sum(),
            ..self.stats.clone()
        }
    }

    /// Reports filed with `BlockPartner`, oldest first (at most `max_reports`).
    pub fn reports(&self) -> impl Iterator<Item = &Report> {
        self.reports.iter()
    }

    /// Starts recording every event stored for any participant, online or not, with its
    /// recipient's id. Outbound only carries events for live sessions; the log has all of
    /// them, for audits and property tests. Drain it with [`Chat::take_event_log`].
    pub fn record_events(&mut self) {
        self.outbox.log.get_or_insert_with(Vec::new);
    }

    /// The events recorded since the last call (empty unless [`Chat::record_events`]).
    pub fn take_event_log(&mut self) -> Vec<(Arc<str>, Arc<Envelope>)> {
        self.outbox.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The latest time the core has seen.
    pub fn now(&self) -> Time {
        self.now
    }

    // ----- internals shared by the command modules -----

    pub(crate) fn advance(&mut self, now: Time) {
        self.now = self.now.max(now);
    }

    /// Runs a send once per `client_message_id`: a retry with a key the sender used
    /// recently returns the first result (success only; a refused send may be retried).
    fn once(
        &mut self,
        key: u64,
        client_message_id: Option<String>,
        send: impl FnOnce(&mut Self) -> Result<Reply, ChatError>,
    ) -> Result<Reply, ChatError> {
        let Some(id) = client_message_id else { return send(self) };
        crate::ids::validate_id("client_message_id", &id, &self.limits)?;
        if let Some(p) = self.participants.get(&key)
            && let Some((_, sent)) = p.sent_keys.iter().find(|(k, _)| **k == *id)
        {
            return Ok(sent.reply());
        }
        let reply = send(self)?;
        let keep = self.limits.idempotency_keys;
        if keep > 0
            && let Some(sent) = crate::participant::Sent::of(&reply)
            && let Some(p) = self.participants.get_mut(&key)
        {
            if p.sent_keys.len() >= keep {
                p.sent_keys.pop_front();
            }
            p.sent_keys.push_back((id.into(), sent));
        }
        Ok(reply)
    }

    fn session_participant(&self, session: SessionId) -> Option<&Participant> {
        let key = self.sessions.get(&session)?.bound?;
        self.participants.get(&key)
    }

    /// Stores `event` in the participant's inbox and, if it is online, queues it for push.
    /// Returns the assigned seq (0 if the participant is unknown).
    pub(crate) fn emit(&mut self, to: u64, event: Event, direct_from: Option<u64>) -> u64 {
        let Some(p) = self.participants.get_mut(&to) else { return 0 };
        self.outbox.deliver(p, event, direct_from, &self.limits).seq
    }

    /// Changes presence, bumping the generation; returns the new generation.
    pub(crate) fn set_presence(&mut self, key: u64, presence: Presence) -> u64 {
        let Some(p) = self.participants.get_mut(&key) else { return 0 };
        p.presence = presence;
        p.generation += 1;
        p.generation
    }

    /// Marks a participant offline, withdraws its direct typing indicators, shrinks its
    /// store to the offline budget, and schedules forgetting it.
    pub(crate) fn go_offline(&mut self, key: u64) {
        self.clear_direct_typing(key);
        let now = self.now;
        let generation = self.set_presence(key, Presence::Offline { since: now });
        if let Some(p) = self.participants.get_mut(&key) {
            let budget = inbox_budget(p, &self.limits);
            self.outbox.evicted += p.inbox.trim(budget, u64::MAX);
        }
        self.timers.set(
            now.plus(self.limits.offline_retention),
            Timer::ForgetParticipant { participant: key, generation },
        );
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::Grace { participant, generation } => self.grace_over(participant, generation),
            Timer::Silence { session, generation, at } => self.check_silence(session, generation, at),
            Timer::ExpireSession { session, generation } => self.expire_if_lost(session, generation),
            Timer::DirectExpiry { participant, seq } => self.expire_direct(participant, seq),
            Timer::Typing { room, member } => self.typing_timeout(room, member),
            Timer::NodeCheck { node, beat } => self.check_node(node, beat),
            Timer::DirectTyping { sender, recipient } => self.direct_typing_timeout(sender, recipient),
            Timer::RetryMatch { participant, ticket } => {
                let queued = self
                    .participants
                    .get(&participant)
                    .is_some_and(|p| matches!(p.activity, Activity::Queued { ticket: t, .. } if t == ticket));
                if queued {
                    self.try_match(participant);
                }
            }
            Timer::ForgetRoom { room } => {
                self.rooms.remove(&room);
            }
            Timer::ForgetParticipant { participant, generation } => self.forget(participant, generation),
        }
    }

    /// A reconnecting participant did not come back in time: its room ends (the partner
    /// is told `timeout` and which messages never arrived), it goes offline, and its lost
    /// session expires.
    fn grace_over(&mut self, key: u64, generation: u64) {
        let Some(p) = self.participants.get(&key).filter(|p| p.generation == generation) else { return };
        let Presence::Reconnecting { session, seq, .. } = p.presence else { return };
        if let Activity::Chatting { room } = p.activity {
            let undelivered =
                self.rooms.get(&room).map(|r| p.inbox.room_messages_after(&r.id, seq)).unwrap_or_default();
            let reason = crate::event::DisconnectReason::Timeout;
            self.end_room_undelivered(room, reason, Some(key), undelivered);
        }
        self.go_offline(key);
        if let Some(session) = session {
            self.expire(session);
        }
    }

    fn forget(&mut self, key: u64, generation: u64) {
        let Some(p) = self.participants.get(&key) else { return };
        if p.generation != generation || !matches!(p.presence, Presence::Offline { .. }) || p.registered {
            return;
        }
        if p.inbox.direct_len() > 0 {
            // Unread direct messages expire within the TTL; look again after it.
            let at = self.now.plus(self.limits.message_ttl);
            self.timers.set(at, Timer::ForgetParticipant { participant: key, generation });
            return;
        }
        if let Some(p) = self.participants.remove(&key) {
            self.by_id.remove(&p.id);
            self.clients.remove(&p.id);
        }
    }
}

/// What `p`'s inbox may keep of non-direct events: the full budget while it has a
/// session (online or reconnecting), the offline one otherwise.
pub(crate) fn inbox_budget(p: &Participant, limits: &Limits) -> crate::inbox::Budget {
    let bytes = match p.presence {
        Presence::Offline { .. } => limits.offline_inbox_bytes,
        _ => limits.inbox_bytes,
    };
    crate::inbox::Budget { count: limits.event_buffer, bytes }
}
