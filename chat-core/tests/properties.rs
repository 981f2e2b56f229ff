//! Property tests: random command sequences with random time steps and session drops.
//!
//! After every step the core's own invariants must hold (`check_invariants`), and an
//! outside model built only from replies and the event log checks delivery: a room
//! message reaches exactly the partner, once, in order; every room ends with at most one
//! `partner.disconnected`, addressed to the member who stayed; blocked pairs never meet
//! again; each participant's seqs go up by one; every direct message is fetched exactly
//! once or expires with the sender told, never both, never lost.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chat_core::{
    Applied, Chat, Command, Config, Event, Hold, Input, Limits, MessageId, Reply, SessionEnd, SessionId, Time,
};
use proptest::prelude::*;

const USERS: [&str; 5] = ["ann", "bob", "cat", "dan", "eve"];
const TOPICS: [&str; 3] = ["rust", "go", "jazz"];

#[derive(Clone, Debug)]
enum Op {
    Open,
    Close {
        s: usize,
        lost: bool,
    },
    Enter {
        s: usize,
        user: Option<usize>,
        topics: u8,
    },
    LeaveQueue {
        s: usize,
    },
    Say {
        s: usize,
        foreign: bool,
    },
    Leave {
        s: usize,
        requeue: bool,
    },
    Typing {
        s: usize,
        on: bool,
    },
    Block {
        s: usize,
    },
    Checkin {
        s: usize,
        user: usize,
    },
    Dm {
        s: usize,
        to: usize,
    },
    DmTyping {
        s: usize,
        to: usize,
        on: bool,
    },
    GetMessages {
        s: usize,
        limit: u8,
    },
    Events {
        s: usize,
        ack: bool,
    },
    TakeReply {
        s: usize,
        from: usize,
    },
    Resume {
        s: usize,
        user: usize,
    },
    Hold {
        s: usize,
        stream: bool,
        /// The serving node that holds it (several nodes on one log), if any.
        node: Option<u64>,
    },
    Release {
        s: usize,
    },
    Touch {
        s: usize,
    },
    Subscribe {
        s: usize,
        on: bool,
    },
    /// A direct message with the seed's `sender_id`: as `user` (who may not be the session's).
    DmAs {
        s: usize,
        user: usize,
        to: usize,
    },
    /// The process restarted on this state.
    Recover,
    /// Serving node `node` joins, beats or leaves.
    Node {
        node: u64,
        beat: NodeBeat,
    },
    Advance {
        ms: u32,
    },
}

#[derive(Clone, Copy, Debug)]
enum NodeBeat {
    Join,
    Heartbeat,
    Leave,
}

/// Serving nodes the ops name.
const NODES: u64 = 3;

fn op() -> impl Strategy<Value = Op> {
    let s = 0usize..8;
    prop_oneof![
        2 => Just(Op::Open),
        1 => (s.clone(), any::<bool>()).prop_map(|(s, lost)| Op::Close { s, lost }),
        4 => (s.clone(), proptest::option::weighted(0.8, 0..USERS.len()), 0u8..8).prop_map(|(s, user, topics)| Op::Enter { s, user, topics }),
        1 => s.clone().prop_map(|s| Op::LeaveQueue { s }),
        6 => (s.clone(), proptest::bool::weighted(0.1)).prop_map(|(s, foreign)| Op::Say { s, foreign }),
        2 => (s.clone(), any::<bool>()).prop_map(|(s, requeue)| Op::Leave { s, requeue }),
        1 => (s.clone(), any::<bool>()).prop_map(|(s, on)| Op::Typing { s, on }),
        1 => s.clone().prop_map(|s| Op::Block { s }),
        2 => (s.clone(), 0..USERS.len()).prop_map(|(s, user)| Op::Checkin { s, user }),
        4 => (s.clone(), 0..USERS.len()).prop_map(|(s, to)| Op::Dm { s, to }),
        1 => (s.clone(), 0..USERS.len(), any::<bool>()).prop_map(|(s, to, on)| Op::DmTyping { s, to, on }),
        2 => (s.clone(), 0u8..3).prop_map(|(s, limit)| Op::GetMessages { s, limit }),
        2 => (s.clone(), any::<bool>()).prop_map(|(s, ack)| Op::Events { s, ack }),
        1 => (s.clone(), 0..USERS.len()).prop_map(|(s, from)| Op::TakeReply { s, from }),
        1 => (s.clone(), 0..USERS.len()).prop_map(|(s, user)| Op::Resume { s, user }),
        2 => (s.clone(), any::<bool>(), proptest::option::of(1..=NODES)).prop_map(|(s, stream, node)| Op::Hold { s, stream, node }),
        2 => s.clone().prop_map(|s| Op::Release { s }),
        1 => s.clone().prop_map(|s| Op::Touch { s }),
        1 => (s.clone(), any::<bool>()).prop_map(|(s, on)| Op::Subscribe { s, on }),
        1 => (s.clone(), 0..USERS.len(), 0..USERS.len()).prop_map(|(s, user, to)| Op::DmAs { s, user, to }),
        1 => Just(Op::Recover),
        2 => (1..=NODES, prop_oneof![Just(NodeBeat::Join), Just(NodeBeat::Heartbeat), Just(NodeBeat::Leave)])
            .prop_map(|(node, beat)| Op::Node { node, beat }),
        3 => (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn limits() -> Limits {
    Limits {
        reconnect_grace: Duration::from_secs(20),
        message_ttl: Duration::from_secs(60),
        interest_timeout: Duration::from_secs(5),
        rematch_cooldown: Duration::from_secs(15),
        typing_timeout: Duration::from_secs(3),
        history_retention: Duration::from_secs(30),
        rate_messages: 5,
        rate_window: Duration::from_secs(5),
        mailbox_capacity: 4,
        event_buffer: 50,
        queue_capacity: 4,
        ..Limits::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DmState {
    Pending,
    Fetched,
    Expired,
}

/// What the outside observer knows, built from replies and the event log only.
#[derive(Default)]
struct Model {
    sessions: Vec<SessionId>,
    tokens: HashMap<String, String>,
    /// room id -> members (from chatroom.found), and how many partner.disconnected it had.
    /// Ordered: the model picks "a room I am not in" from it, and that pick must not
    /// depend on hash order, or the determinism property would test the model instead.
    rooms: BTreeMap<Arc<str>, (BTreeSet<Arc<str>>, usize)>,
    /// user -> current room as the model sees it.
    in_room: HashMap<Arc<str>, Arc<str>>,
    blocked: BTreeSet<(Arc<str>, Arc<str>)>,
    last_seq: HashMap<Arc<str>, u64>,
    /// direct message id -> (sender, state)
    dms: HashMap<MessageId, (Arc<str>, DmState)>,
    /// per user: DM events returned by Events (seq -> message id), for acks.
    seen_dm_events: HashMap<Arc<str>, BTreeMap<u64, MessageId>>,
    /// per (session, identity): the max seq returned by the last Events call. Keyed by
    /// both because a session can take another identity after its first one left.
    cursor: HashMap<(SessionId, Arc<str>), u64>,
    /// room message id -> its expected recipient; must be logged exactly once.
    expect_room_msg: Vec<(MessageId, Arc<str>)>,
    /// room message id -> (room, sender), for `undelivered` lists.
    room_msgs: HashMap<MessageId, (Arc<str>, Arc<str>)>,
    /// Rooms whose partner (of the key user) is reconnecting: (room, told user).
    /// With the number of restarts before it was told (a restart tells it again, with
    /// the new deadline).
    reconnecting: BTreeMap<(Arc<str>, Arc<str>), u32>,
    /// Restarts so far.
    recovers: u32,
    /// Holds taken per session and not yet released: (session, what, the node holding it).
    holds: Vec<(SessionId, Hold, Option<u64>)>,
    transcript: Vec<String>,
}

struct Run {
    chat: Chat,
    now: Time,
    m: Model,
    /// Every input, as a log would hold it.
    log: Vec<(Time, Input)>,
    /// What each input answered and caused, serialized, in order (for replay checks).
    outputs: Vec<String>,
    /// Sessions the core expired, not yet folded into the model.
    expired: Vec<SessionId>,
}

impl Run {
    fn new(seed: [u8; 32]) -> Self {
        let mut chat = Chat::new(Config { seed, limits: limits(), registered: Vec::new() });
        chat.record_events();
        Run {
            chat,
            now: Time::from_millis(1_704_110_400_000),
            m: Model::default(),
            log: Vec::new(),
            outputs: Vec::new(),
            expired: Vec::new(),
        }
    }

    /// Applies `input` now, through the one entry point, and records it and what it gave.
    fn apply(&mut self, input: Input) -> Applied {
        self.log.push((self.now, input.clone()));
        let applied = self.chat.apply(self.now, input);
        self.outputs.push(output_of(&mut self.chat, &applied, &mut self.expired));
        applied
    }

    fn session(&self, i: usize) -> Option<SessionId> {
        (!self.m.sessions.is_empty()).then(|| self.m.sessions[i % self.m.sessions.len()])
    }

    fn me(&self, s: SessionId) -> Option<Arc<str>> {
        self.chat.session_user(s).cloned()
    }

    fn handle(&mut self, s: SessionId, cmd: Command) -> Option<Reply> {
        let r = match self.apply(Input::Command { session: s, command: cmd.clone(), act_as: None }) {
            Applied::Replied(answer) => answer.reply,
            other => panic!("a command answered {other:?}"),
        };
        self.m.transcript.push(format!(
            "{s} {cmd:?} => {}",
            match &r {
                Ok(reply) => serde_json::to_string(reply).unwrap(),
                Err(e) => format!("error: {e}"),
            }
        ));
        r.ok()
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Open => {
                let key = format!("mcp-{}", self.log.len());
                let open =
                    Input::Open { key: Some(key.as_str().into()), meta: Some("v1".into()), lease: false };
                let Applied::Opened(s) = self.apply(open) else { panic!("open answered no session") };
                prop_assert_eq!(self.chat.session_by_key(&key), Some(s), "a session is found by its key");
                self.m.sessions.push(s);
            }
            Op::Close { s, lost } => {
                if let Some(s) = self.session(s) {
                    let how = if lost { SessionEnd::Lost } else { SessionEnd::Closed };
                    self.apply(Input::Close { session: s, how });
                    self.m.sessions.retain(|x| *x != s);
                    self.m.transcript.push(format!("{s} closed {how:?}"));
                }
            }
            Op::Enter { s, user, topics } => {
                if let Some(s) = self.session(s) {
                    let interests = TOPICS
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| topics & (1 << i) != 0)
                        .map(|(_, t)| t.to_string())
                        .collect();
                    let cmd = Command::EnterQueue {
                        user_id: user.map(|u| USERS[u].to_string()),
                        display_name: None,
                        interests,
                        resume_token: None,
                    };
                    if let Some(Reply::EnterQueue(r)) = self.handle(s, cmd)
                        && let Some(t) = r.resume_token
                    {
                        self.m.tokens.insert(r.user_id.to_string(), t.to_string());
                    }
                }
            }
            Op::LeaveQueue { s } => {
                if let Some(s) = self.session(s) {
                    self.handle(s, Command::LeaveQueue);
                }
            }
            Op::Say { s, foreign } => {
                let Some(s) = self.session(s) else { return Ok(()) };
                let Some(me) = self.me(s) else { return Ok(()) };
                let room = if foreign {
                    self.m
                        .rooms
                        .iter()
                        .find(|(_, (members, _))| !members.contains(&me))
                        .map(|(r, _)| r.clone())
                } else {
                    self.m.in_room.get(&me).cloned()
                };
                let Some(room) = room else { return Ok(()) };
                let partner = self
                    .m
                    .rooms
                    .get(&room)
                    .and_then(|(members, _)| members.iter().find(|p| **p != me).cloned());
                let reply = self.handle(
                    s,
                    Command::SendRoom {
                        room_id: room.to_string(),
                        message: "hi".into(),
                        client_message_id: None,
                    },
                );
                if let Some(Reply::SentRoom(r)) = reply {
                    prop_assert!(!foreign, "sent into a room {me} is not in");
                    self.m.room_msgs.insert(r.message_id, (room.clone(), me.clone()));
                    self.m.expect_room_msg.push((r.message_id, partner.expect("room has a partner")));
                }
            }
            Op::Leave { s, requeue } => {
                if let Some(s) = self.session(s)
                    && let Some(me) = self.me(s)
                    && let Some(room) = self.m.in_room.get(&me).cloned()
                {
                    self.handle(s, Command::LeaveChat { room_id: room.to_string(), requeue });
                }
            }
            Op::Typing { s, on } => {
                if let Some(s) = self.session(s)
                    && let Some(me) = self.me(s)
                    && let Some(room) = self.m.in_room.get(&me).cloned()
                {
                    self.handle(s, Command::SetTyping { room_id: room.to_string(), typing: on });
                }
            }
            Op::Block { s } => {
                if let Some(s) = self.session(s)
                    && let Some(me) = self.me(s)
                    && let Some(room) = self.m.in_room.get(&me).cloned()
                    && let Some(Reply::Blocked(b)) =
                        self.handle(s, Command::BlockPartner { room_id: room.to_string(), reason: None })
                {
                    self.m.blocked.insert((me.clone(), b.blocked_user_id.clone()));
                    self.m.blocked.insert((b.blocked_user_id, me));
                }
            }
            Op::Checkin { s, user } => {
                if let Some(s) = self.session(s) {
                    let cmd = Command::Checkin {
                        client_id: USERS[user].into(),
                        name: None,
                        capabilities: vec![],
                        resume_token: None,
                    };
                    if let Some(Reply::CheckedIn(r)) = self.handle(s, cmd)
                        && let Some(t) = r.resume_token
                    {
                        self.m.tokens.insert(r.client_id.to_string(), t.to_string());
                    }
                }
            }
            Op::Dm { s, to } => {
                if let Some(s) = self.session(s)
                    && let Some(me) = self.me(s)
                    && let Some(Reply::SentDirect(r)) = self.handle(
                        s,
                        Command::SendDirect {
                            recipient_id: USERS[to].into(),
                            message: "dm".into(),
                            client_message_id: None,
                        },
                    )
                {
                    prop_assert!(
                        self.m.dms.insert(r.message_id, (me, DmState::Pending)).is_none(),
                        "message id reused"
                    );
                }
            }
            Op::DmTyping { s, to, on } => {
                if let Some(s) = self.session(s) {
                    self.handle(s, Command::SetDirectTyping { recipient_id: USERS[to].into(), typing: on });
                }
            }
            Op::GetMessages { s, limit } => {
                if let Some(s) = self.session(s)
                    && let Some(Reply::Messages(r)) =
                        self.handle(s, Command::GetMessages { limit: Some(limit as usize + 1) })
                {
                    for msg in r.messages {
                        self.fetched(&msg.message_id)?;
                    }
                }
            }
            Op::TakeReply { s, from } => {
                if let Some(s) = self.session(s) {
                    let cmd = Command::TakeReply { from: USERS[from].into(), after_seq: 0 };
                    if let Some(Reply::TakenReply(r)) = self.handle(s, cmd)
                        && let Some(msg) = r.message
                    {
                        prop_assert_eq!(&*msg.from, USERS[from]);
                        self.fetched(&msg.message_id)?;
                    }
                }
            }
            Op::Events { s, ack } => {
                let Some(s) = self.session(s) else { return Ok(()) };
                let Some(me) = self.me(s) else { return Ok(()) };
                let after = if ack { self.m.cursor.get(&(s, me.clone())).copied() } else { None };
                if let Some(Reply::Events(r)) =
                    self.handle(s, Command::Events { after_seq: after, limit: None })
                {
                    if let Some(c) = after {
                        let seen = self.m.seen_dm_events.entry(me.clone()).or_default();
                        let acked: Vec<MessageId> = seen.range(..=c).map(|(_, id)| *id).collect();
                        seen.retain(|&seq, _| seq > c);
                        for id in acked {
                            if self.m.dms.get(&id).is_some_and(|(_, st)| *st == DmState::Pending) {
                                self.m.dms.get_mut(&id).expect("known").1 = DmState::Fetched;
                            }
                        }
                    }
                    for e in &r.events {
                        if let Event::MessageReceived(mr) = &e.event
                            && mr.room_id.is_none()
                        {
                            let state = self.m.dms.get(&mr.message_id).map(|x| x.1);
                            prop_assert_eq!(
                                state,
                                Some(DmState::Pending),
                                "returned a direct message that is gone"
                            );
                            self.m.seen_dm_events.entry(me.clone()).or_default().insert(e.seq, mr.message_id);
                        }
                    }
                    if let Some(last) = r.events.last() {
                        self.m.cursor.insert((s, me.clone()), last.seq);
                    }
                }
            }
            Op::Resume { s, user } => {
                if let Some(s) = self.session(s)
                    && let Some(token) = self.m.tokens.get(USERS[user]).cloned()
                {
                    self.handle(s, Command::Resume { user_id: USERS[user].into(), resume_token: token });
                }
            }
            Op::Hold { s, stream, node } => {
                if let Some(s) = self.session(s) {
                    let what = if stream { Hold::Stream } else { Hold::Request };
                    self.apply(Input::Hold { session: s, what, node });
                    self.m.holds.push((s, what, node));
                    self.m.transcript.push(format!("{s} hold {what:?} on {node:?}"));
                }
            }
            Op::Release { s } => {
                if !self.m.holds.is_empty() {
                    // A node's hold may already have ended with the node (given up after
                    // its heartbeats stopped): the core then ignores the release.
                    let (s, what, node) = self.m.holds.remove(s % self.m.holds.len());
                    self.apply(Input::Release { session: s, what, node });
                    self.m.transcript.push(format!("{s} release {what:?} on {node:?}"));
                }
            }
            Op::Node { node, beat } => {
                let input = match beat {
                    NodeBeat::Join => {
                        if self.chat.live_nodes().is_empty() {
                            // The first node of an idle chat: a restart, as far as anyone can tell.
                            self.m.recovers += 1;
                            self.m.holds.clear();
                        }
                        Input::Join { node }
                    }
                    NodeBeat::Heartbeat => Input::Heartbeat { node },
                    NodeBeat::Leave => {
                        self.m.holds.retain(|(_, _, n)| *n != Some(node));
                        Input::Leave { node }
                    }
                };
                self.apply(input);
                self.m.transcript.push(format!("node {node} {beat:?}"));
            }
            Op::Touch { s } => {
                if let Some(s) = self.session(s) {
                    self.apply(Input::Touch { session: s });
                    self.m.transcript.push(format!("{s} touch"));
                }
            }
            Op::Subscribe { s, on } => {
                if let Some(s) = self.session(s) {
                    self.apply(Input::Subscribe { session: s, uri: "chat://inbox".into(), on });
                    let kept =
                        self.chat.session_record(s).is_some_and(|r| r.subscriptions.len() == usize::from(on));
                    prop_assert!(kept, "the subscription is kept with the session");
                }
            }
            Op::DmAs { s, user, to } => {
                if let Some(s) = self.session(s) {
                    let claim = chat_core::ActAs { id: USERS[user].into(), field: "sender_id".into() };
                    let current = self.me(s);
                    let command = Command::SendDirect {
                        recipient_id: USERS[to].into(),
                        message: "as claimed".into(),
                        client_message_id: None,
                    };
                    let Applied::Replied(answer) =
                        self.apply(Input::Command { session: s, command, act_as: Some(claim) })
                    else {
                        panic!("a command answered otherwise")
                    };
                    if let Some(current) = current
                        && *current != *USERS[user]
                    {
                        prop_assert_eq!(
                            answer.reply.as_ref().err().map(|e| e.code()),
                            Some("identity_mismatch")
                        );
                    }
                    if let Some(Reply::CheckedIn(c)) = &answer.checkin
                        && let Some(t) = &c.resume_token
                    {
                        self.m.tokens.insert(c.client_id.to_string(), t.to_string());
                    }
                    if let Ok(Reply::SentDirect(sent)) = &answer.reply {
                        let fresh =
                            self.m.dms.insert(sent.message_id, (USERS[user].into(), DmState::Pending));
                        prop_assert!(fresh.is_none(), "message id reused");
                    }
                    self.m.transcript.push(format!(
                        "{s} dm as {} => {:?}",
                        USERS[user],
                        answer.reply.is_ok()
                    ));
                }
            }
            Op::Recover => {
                self.m.recovers += 1;
                self.apply(Input::Recover);
                // The process that held them is gone.
                self.m.holds.clear();
                self.m.transcript.push("recover".into());
            }
            Op::Advance { ms } => {
                self.now = self.now.plus(Duration::from_millis(ms.into()));
                self.apply(Input::Tick);
            }
        }
        self.observe()
    }

    fn fetched(&mut self, id: &MessageId) -> Result<(), TestCaseError> {
        let entry = self.m.dms.get_mut(id);
        prop_assert!(
            entry.as_ref().is_some_and(|(_, st)| *st == DmState::Pending),
            "fetched {id} twice or after expiry"
        );
        if let Some(e) = entry {
            e.1 = DmState::Fetched;
        }
        Ok(())
    }

    /// Checks invariants and folds the new events into the model.
    fn observe(&mut self) -> Result<(), TestCaseError> {
        if let Err(e) = self.chat.check_invariants() {
            return Err(TestCaseError::fail(format!("invariant: {e}\n{}", self.m.transcript.join("\n"))));
        }
        for s in std::mem::take(&mut self.expired) {
            prop_assert!(self.m.sessions.contains(&s), "{} expired twice or unknown", s);
            self.m.sessions.retain(|x| *x != s);
            self.m.holds.retain(|(x, _, _)| *x != s);
            self.m.transcript.push(format!("{s} expired"));
        }
        let log = self.chat.take_event_log();
        for (to, envelope) in log {
            let (seq, event) = (envelope.seq, envelope.event.clone());
            let last = self.m.last_seq.insert(to.clone(), seq).unwrap_or(0);
            prop_assert_eq!(seq, last + 1, "seq of {} jumped", to);
            self.m.transcript.push(format!("  -> {to} #{seq} {}", event.method()));
            match event {
                Event::ChatroomFound(f) => {
                    prop_assert!(!self.m.in_room.contains_key(&to), "{} matched while in a room", to);
                    prop_assert!(
                        !self.m.blocked.contains(&(to.clone(), f.partner.user_id.clone())),
                        "blocked pair matched"
                    );
                    prop_assert_ne!(&to, &f.partner.user_id);
                    let entry = self.m.rooms.entry(f.room_id.clone()).or_default();
                    entry.0.insert(to.clone());
                    entry.0.insert(f.partner.user_id.clone());
                    prop_assert_eq!(entry.0.len(), 2, "room with other than two members");
                    self.m.in_room.insert(to, f.room_id);
                }
                Event::PartnerDisconnected(d) => {
                    self.m.reconnecting.remove(&(d.room_id.clone(), to.clone()));
                    for id in &d.undelivered {
                        prop_assert_eq!(
                            self.m.room_msgs.get(id),
                            Some(&(d.room_id.clone(), to.clone())),
                            "undelivered {} is not a message {} sent in {}",
                            id,
                            to,
                            d.room_id
                        );
                    }
                    let entry = self.m.rooms.get_mut(&d.room_id).expect("disconnect from a known room");
                    entry.1 += 1;
                    prop_assert_eq!(entry.1, 1, "more than one partner.disconnected for a room");
                    prop_assert!(entry.0.contains(&to));
                    for member in entry.0.clone() {
                        self.m.in_room.remove(&member);
                    }
                }
                Event::MessageReceived(mr) => match mr.room_id {
                    Some(room) => {
                        let i = self.m.expect_room_msg.iter().position(|(id, _)| *id == mr.message_id);
                        let Some(i) = i else {
                            return Err(TestCaseError::fail("unexpected or duplicate room message"));
                        };
                        prop_assert_eq!(i, 0, "room messages out of order");
                        let (_, recipient) = self.m.expect_room_msg.remove(i);
                        prop_assert_eq!(&recipient, &to, "room message reached the wrong participant");
                        prop_assert!(self.m.rooms.get(&room).is_some_and(|(m, _)| m.contains(&to)));
                    }
                    None => {
                        prop_assert!(
                            self.m.dms.get(&mr.message_id).is_some_and(|(_, st)| *st == DmState::Pending)
                        );
                    }
                },
                Event::MessageExpired(x) => {
                    let entry = self.m.dms.get_mut(&x.message_id);
                    let Some(entry) = entry else {
                        return Err(TestCaseError::fail("expiry of an unknown message"));
                    };
                    prop_assert_eq!(entry.1, DmState::Pending, "expired after being fetched");
                    prop_assert_eq!(&entry.0, &to, "expiry told to someone other than the sender");
                    entry.1 = DmState::Expired;
                }
                Event::PartnerTyping(_) => {}
                Event::DirectTyping(t) => {
                    prop_assert_ne!(&to, &t.from, "a typing indicator to oneself");
                }
                Event::PartnerReconnecting(r) => {
                    prop_assert_eq!(
                        self.m.in_room.get(&to),
                        Some(&r.room_id),
                        "reconnecting for a room not mine"
                    );
                    let before = self.m.reconnecting.insert((r.room_id.clone(), to.clone()), self.m.recovers);
                    prop_assert!(
                        before.is_none_or(|told| told < self.m.recovers),
                        "partner.reconnecting twice without partner.reconnected or a restart"
                    );
                }
                Event::PartnerReconnected(r) => {
                    prop_assert!(
                        self.m.reconnecting.remove(&(r.room_id.clone(), to.clone())).is_some(),
                        "partner.reconnected without partner.reconnecting"
                    );
                }
            }
        }
        prop_assert!(self.m.expect_room_msg.is_empty(), "a room message was not delivered");
        // Participants the core shows as idle are not in a room in the model either.
        for s in self.m.sessions.clone() {
            if let Some(me) = self.me(s) {
                let id = self.chat.peek_identity(s);
                let chatting = matches!(id.activity, chat_core::ActivityState::Chatting { .. });
                prop_assert_eq!(
                    chatting,
                    self.m.in_room.contains_key(&me),
                    "room membership of {} disagrees",
                    me
                );
            }
        }
        Ok(())
    }

    /// Lets every timer run out, then checks that no direct message is unaccounted for.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.now = self.now.plus(Duration::from_secs(3600));
        self.apply(Input::Tick);
        self.observe()?;
        // Messages whose sender was forgotten cannot be told; none are forgotten here.
        for (id, (_, state)) in &self.m.dms {
            prop_assert_ne!(*state, DmState::Pending, "direct message {} neither fetched nor expired", id);
        }
        Ok(())
    }
}

/// An input's answer and everything it caused, as text: the reply, the pushes (with
/// their sessions) and the sessions that expired. Drains the core's queues.
fn output_of(chat: &mut Chat, applied: &Applied, expired_into: &mut Vec<SessionId>) -> String {
    let answer = match applied {
        Applied::Opened(s) => format!("opened {s}"),
        Applied::Replied(answer) => format!(
            "{} checkin {:?} cursor {} pending {}",
            match &answer.reply {
                Ok(reply) => serde_json::to_string(reply).unwrap(),
                Err(e) => format!("error: {e}"),
            },
            answer.checkin.as_ref().map(|c| serde_json::to_string(c).unwrap()),
            answer.cursor,
            answer.pending
        ),
        Applied::Done => "done".into(),
    };
    let pushed: Vec<String> = std::iter::from_fn(|| chat.poll_outbound())
        .map(|o| format!("{} <- {}", o.session, serde_json::to_string(&*o.envelope).unwrap()))
        .collect();
    let expired: Vec<SessionId> = std::iter::from_fn(|| chat.poll_expired()).collect();
    let text = format!("{answer} | pushed {pushed:?} | expired {expired:?}");
    expired_into.extend(expired);
    text
}

/// A core's state as canonical JSON (objects sorted by key).
fn canonical(chat: &Chat) -> serde_json::Value {
    let bytes = chat.snapshot().expect("snapshot");
    serde_json::from_slice(&bytes).expect("snapshot is JSON")
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=5000 for a deeper run.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn random_sessions_keep_every_invariant(ops in proptest::collection::vec(op(), 1..120)) {
        let mut run = Run::new([9; 32]);
        for op in &ops {
            run.step(op)?;
        }
        run.finish()?;
    }

    /// The log is the chat: replaying every input, through `Chat::apply`, into a fresh
    /// core gives byte-identical answers, pushes and expiries, and the same final state.
    #[test]
    fn replaying_the_input_log_reproduces_the_run(ops in proptest::collection::vec(op(), 1..120)) {
        let mut run = Run::new([6; 32]);
        for op in &ops {
            run.step(op)?;
        }
        run.finish()?;
        let mut replica = Chat::new(Config { seed: [6; 32], limits: limits(), registered: Vec::new() });
        let mut sink = Vec::new();
        let replayed: Vec<String> = run
            .log
            .iter()
            .map(|(at, input)| {
                let applied = replica.apply(*at, input.clone());
                output_of(&mut replica, &applied, &mut sink)
            })
            .collect();
        prop_assert_eq!(&replayed, &run.outputs);
        prop_assert_eq!(replica.stats(), run.chat.stats());
        // The log survives serialization, as a store would hold it.
        let text = serde_json::to_string(&run.log.iter().map(|(t, i)| (t.as_millis(), i)).collect::<Vec<_>>()).unwrap();
        let back: Vec<(u64, Input)> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back.len(), run.log.len());
        prop_assert!(back.iter().zip(&run.log).all(|((t, i), (at, input))| *t == at.as_millis() && i == input));
    }

    /// A snapshot taken at any point, restored, and fed the rest of the log gives the
    /// same answers, pushes and expiries as the uninterrupted run, and the same final
    /// state (compared as canonical JSON: map order may differ, content may not).
    #[test]
    fn a_snapshot_plus_the_log_tail_is_the_same_chat(
        ops in proptest::collection::vec(op(), 1..120),
        cut in 0.0f64..1.0,
    ) {
        let mut run = Run::new([8; 32]);
        for op in &ops {
            run.step(op)?;
        }
        run.finish()?;
        let cut = ((run.log.len() as f64) * cut) as usize;
        let mut sink = Vec::new();
        let mut first = Chat::new(Config { seed: [8; 32], limits: limits(), registered: Vec::new() });
        for (at, input) in &run.log[..cut] {
            let applied = first.apply(*at, input.clone());
            output_of(&mut first, &applied, &mut sink);
        }
        let snapshot = first.snapshot().map_err(TestCaseError::fail)?;
        let mut restored = Chat::restore(&snapshot).map_err(TestCaseError::fail)?;
        prop_assert_eq!(canonical(&restored), canonical(&first), "the restored state is the saved one");
        let tail: Vec<String> = run.log[cut..]
            .iter()
            .map(|(at, input)| {
                let applied = restored.apply(*at, input.clone());
                output_of(&mut restored, &applied, &mut sink)
            })
            .collect();
        prop_assert_eq!(&tail[..], &run.outputs[cut..]);
        prop_assert_eq!(canonical(&restored), canonical(&run.chat));
    }

    /// Several nodes on one shared log are replicas: each applies every input, and some
    /// are restarted from a snapshot at points of their own (a node that restarts or
    /// joins late). All of them answer, push and expire the same, and end in the same
    /// state as the uninterrupted run.
    #[test]
    fn replicas_fed_one_log_agree(
        ops in proptest::collection::vec(op(), 1..120),
        restarts in proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, 0..4), 3),
    ) {
        let mut run = Run::new([5; 32]);
        for op in &ops {
            run.step(op)?;
        }
        run.finish()?;
        let len = run.log.len();
        for (replica, cuts) in restarts.iter().enumerate() {
            let cuts: BTreeSet<usize> = cuts.iter().map(|c| ((len as f64) * c) as usize).collect();
            let mut chat = Chat::new(Config { seed: [5; 32], limits: limits(), registered: Vec::new() });
            let mut sink = Vec::new();
            let mut outputs = Vec::with_capacity(len);
            for (i, (at, input)) in run.log.iter().enumerate() {
                if cuts.contains(&i) {
                    let snapshot = chat.snapshot().map_err(TestCaseError::fail)?;
                    chat = Chat::restore(&snapshot).map_err(TestCaseError::fail)?;
                }
                let applied = chat.apply(*at, input.clone());
                outputs.push(output_of(&mut chat, &applied, &mut sink));
            }
            prop_assert_eq!(&outputs, &run.outputs, "replica {} restarted at {:?}", replica, cuts);
            prop_assert_eq!(canonical(&chat), canonical(&run.chat), "replica {}", replica);
        }
    }

    #[test]
    fn same_seed_same_inputs_give_identical_output(ops in proptest::collection::vec(op(), 1..80)) {
        let transcript = |seed| {
            let mut run = Run::new(seed);
            for op in &ops {
                let _ = run.step(op);
            }
            run.m.transcript.join("\n")
        };
        prop_assert_eq!(transcript([3; 32]), transcript([3; 32]));
    }

    /// Without interests, blocks or partings, the queue is strictly first come, first served.
    #[test]
    fn fifo_without_interests(ops in proptest::collection::vec((0usize..8, 0u8..4), 1..80)) {
        let mut chat = Chat::new(Config { seed: [1; 32], limits: limits(), registered: Vec::new() });
        let now = Time::from_millis(1_704_110_400_000);
        let mut sessions: Vec<SessionId> = Vec::new();
        let mut queue: Vec<SessionId> = Vec::new();
        for (i, kind) in ops {
            match kind {
                0 | 1 => {
                    let s = chat.open_session(now);
                    sessions.push(s);
                    let reply = chat.handle(now, s, Command::EnterQueue { user_id: None, display_name: None, interests: vec![], resume_token: None });
                    match reply {
                        Ok(Reply::EnterQueue(r)) => match r.status {
                            chat_core::QueueStatus::Matched { partner, .. } => {
                                let head = queue.remove(0);
                                prop_assert_eq!(chat.session_user(head), Some(&partner.user_id), "not the longest waiting");
                            }
                            chat_core::QueueStatus::Waiting { position, .. } => {
                                queue.push(s);
                                prop_assert_eq!(position, queue.len());
                            }
                        },
                        Ok(other) => prop_assert!(false, "unexpected reply {other:?}"),
                        Err(e) => prop_assert_eq!(e, chat_core::ChatError::QueueFull { capacity: 4 }),
                    }
                }
                2 if !sessions.is_empty() => {
                    let s = sessions[i % sessions.len()];
                    chat.handle(now, s, Command::LeaveQueue).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    queue.retain(|q| *q != s);
                }
                _ if !sessions.is_empty() => {
                    let s = sessions.remove(i % sessions.len());
                    chat.session_closed(now, s, SessionEnd::Lost);
                    queue.retain(|q| *q != s);
                }
                _ => {}
            }
            prop_assert!(queue.len() <= 1, "FIFO without constraints never holds two waiting");
        }
    }
}
