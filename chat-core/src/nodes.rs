//! Serving nodes: which process holds each session's streams, when several processes
//! (replicas of this core fed by one shared log) serve one chat.
//!
//! A session's holds ([`crate::Hold`]) are kept by the process that serves the stream
//! or the waiting request. With one process that is simple: if it dies, the restart
//! says so ([`Chat::recover`]). With several, one may die while the others go on, and
//! nobody is left to release what it held. So each hold a node reports names it
//! ([`crate::Input::Hold::node`]), nodes log a heartbeat every few seconds, and when a
//! node's heartbeats stop for [`crate::Limits::node_timeout`] (by the log's clock, so
//! every replica decides the same at the same input) the core releases every hold of
//! that node at once. Its clients' sessions then go silent as if their connections had
//! dropped: the usual stream grace, then reconnect grace apply, and a client that opens
//! its stream on another node in the meantime notices nothing.
//!
//! | input                        | means                                                    |
//! | ---------------------------- | -------------------------------------------------------- |
//! | [`crate::Input::Join`]       | a node starts serving (the first of an idle chat: [`Chat::recover`]) |
//! | [`crate::Input::Heartbeat`]  | a node is alive                                          |
//! | [`crate::Input::Leave`]      | a node stops cleanly: its holds end now                  |

use std::collections::BTreeMap;

use crate::chat::Chat;
use crate::ids::SessionId;
use crate::time::Time;
use crate::timers::Timer;

/// A node the core has heard from within `node_timeout`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Node {
    /// Heartbeats so far; a liveness check armed at beat `n` only counts if no later
    /// beat came.
    beats: u64,
    /// Holds this node reported and has not released, per session.
    holds: BTreeMap<SessionId, u32>,
}

impl Chat {
    /// [`crate::Input::Join`]: `node` starts serving. If no other node is alive the chat
    /// was not served at all until now (every node stopped or crashed), so it recovers
    /// as after a restart ([`Chat::recover`]): fresh graces for everyone, due timers fire.
    pub fn node_joined(&mut self, now: Time, node: u64) {
        self.tick(now);
        if self.nodes.is_empty() {
            self.recover(now);
        }
        self.node_alive(now, node);
    }

    /// [`crate::Input::Heartbeat`]: `node` is alive; it is given up if it stays silent for
    /// `node_timeout`.
    pub fn node_alive(&mut self, now: Time, node: u64) {
        self.tick(now);
        let record = self.nodes.entry(node).or_default();
        record.beats += 1;
        let beat = record.beats;
        self.timers.set(self.now.plus(self.limits.node_timeout), Timer::NodeCheck { node, beat });
    }

    /// [`crate::Input::Leave`]: `node` stopped serving; what it held ends now.
    pub fn node_left(&mut self, now: Time, node: u64) {
        self.tick(now);
        self.node_lost(node);
    }

    /// Node ids heard from within `node_timeout`, in order.
    pub fn live_nodes(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Whether `node` counts as alive.
    pub fn is_node_live(&self, node: u64) -> bool {
        self.nodes.contains_key(&node)
    }

    /// A liveness check armed at heartbeat `beat` of `node` is due.
    pub(crate) fn check_node(&mut self, node: u64, beat: u64) {
        if self.nodes.get(&node).is_some_and(|n| n.beats == beat) {
            self.node_lost(node);
        }
    }

    /// Counts a hold `node` reported for `session` (after [`Chat::hold`] counted it on
    /// the session). A node not known yet (its first heartbeat is still on its way) is
    /// known from now on.
    pub(crate) fn node_hold(&mut self, node: u64, session: SessionId) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        if !self.nodes.contains_key(&node) {
            self.node_alive(self.now, node);
        }
        if let Some(record) = self.nodes.get_mut(&node) {
            *record.holds.entry(session).or_default() += 1;
        }
    }

    /// Takes one hold of `session` off `node`'s count; `false` if it had none (the node
    /// was given up, and its holds released, before this release arrived), and then the
    /// session's own count must not be touched either.
    pub(crate) fn node_release(&mut self, node: u64, session: SessionId) -> bool {
        let Some(record) = self.nodes.get_mut(&node) else { return false };
        let Some(count) = record.holds.get_mut(&session) else { return false };
        *count -= 1;
        if *count == 0 {
            record.holds.remove(&session);
        }
        true
    }

    /// Forgets what the nodes held for `session` (it ended).
    pub(crate) fn forget_node_holds(&mut self, session: SessionId) {
        for record in self.nodes.values_mut() {
            record.holds.remove(&session);
        }
    }

    /// Forgets what every node held (a restart cleared every session's holds).
    pub(crate) fn clear_node_holds(&mut self) {
        for record in self.nodes.values_mut() {
            record.holds.clear();
        }
    }

    /// `node` is gone: every hold it reported is released, as if each of its streams
    /// and requests had ended now.
    fn node_lost(&mut self, node: u64) {
        let Some(record) = self.nodes.remove(&node) else { return };
        for (session, count) in record.holds {
            self.release_many(session, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Config, Limits};
    use crate::{Chat, Command, Hold, Input, SessionId, Time};

    const NODE_A: u64 = 11;
    const NODE_B: u64 = 22;

    fn at(ms: u64) -> Time {
        Time::from_millis(1_000_000 + ms)
    }

    /// Two users paired in a room, each with a stream held on a node of its own.
    fn paired() -> (Chat, SessionId, SessionId) {
        let limits = Limits {
            node_timeout: Duration::from_secs(10),
            stream_grace: Duration::from_secs(3),
            reconnect_grace: Duration::from_secs(30),
            ..Limits::default()
        };
        let mut chat = Chat::new(Config { seed: [4; 32], limits, registered: Vec::new() });
        chat.apply(at(0), Input::Join { node: NODE_A });
        chat.apply(at(0), Input::Join { node: NODE_B });
        let (ada, bob) = (chat.open_session(at(0)), chat.open_session(at(0)));
        for (session, node) in [(ada, NODE_A), (bob, NODE_B)] {
            chat.apply(at(0), Input::Hold { session, what: Hold::Stream, node: Some(node) });
            let enter = Command::EnterQueue {
                user_id: None,
                display_name: None,
                interests: vec![],
                resume_token: None,
            };
            chat.handle(at(0), session, enter).expect("queued");
        }
        while chat.poll_outbound().is_some() {}
        (chat, ada, bob)
    }

    fn events(chat: &mut Chat) -> Vec<&'static str> {
        std::iter::from_fn(|| chat.poll_outbound()).map(|o| o.envelope.event.method()).collect()
    }

    /// Node B beats every 2 s from `from` through `until` (ms); node A stays silent.
    fn beat(chat: &mut Chat, from: u64, until: u64) {
        for ms in (from..=until).step_by(2_000) {
            chat.apply(at(ms), Input::Heartbeat { node: NODE_B });
        }
    }

    #[test]
    fn a_node_whose_heartbeats_stop_loses_its_streams_and_only_its_streams() {
        let (mut chat, ada, bob) = paired();
        // Node A never beat after joining: given up at 10 s, Ada's stream counts as
        // dropped then, and after the stream grace her connection is lost.
        beat(&mut chat, 0, 8_000);
        chat.tick(at(9_999));
        assert!(chat.is_node_live(NODE_A));
        beat(&mut chat, 10_000, 10_000);
        assert!(!chat.is_node_live(NODE_A) && chat.is_node_live(NODE_B));
        assert_eq!(events(&mut chat), Vec::<&str>::new(), "a stream grace first");
        beat(&mut chat, 12_000, 14_000);
        assert!(!chat.is_live(ada) && chat.is_live(bob));
        assert_eq!(events(&mut chat), ["partner.reconnecting"], "Bob is told, Ada is not");
    }

    #[test]
    fn a_stream_reopened_on_another_node_keeps_the_session() {
        let (mut chat, ada, _) = paired();
        chat.apply(at(1_000), Input::Hold { session: ada, what: Hold::Stream, node: Some(NODE_B) });
        beat(&mut chat, 2_000, 20_000);
        assert!(!chat.is_node_live(NODE_A));
        assert!(chat.is_live(ada));
        assert_eq!(events(&mut chat), Vec::<&str>::new(), "Bob noticed nothing");
    }

    #[test]
    fn a_release_from_a_node_given_up_changes_nothing() {
        let (mut chat, ada, _) = paired();
        beat(&mut chat, 0, 10_000);
        assert!(!chat.is_node_live(NODE_A));
        chat.apply(at(11_000), Input::Hold { session: ada, what: Hold::Stream, node: Some(NODE_B) });
        // Node A comes back from a partition and reports the end of its old stream: it
        // must not end the stream Ada holds on node B.
        chat.apply(at(12_000), Input::Release { session: ada, what: Hold::Stream, node: Some(NODE_A) });
        beat(&mut chat, 12_000, 20_000);
        assert!(chat.is_live(ada));
        assert_eq!(events(&mut chat), Vec::<&str>::new());
    }

    #[test]
    fn a_node_that_leaves_ends_its_holds_at_once() {
        let (mut chat, ada, bob) = paired();
        chat.apply(at(1_000), Input::Leave { node: NODE_A });
        assert!(!chat.is_node_live(NODE_A));
        chat.tick(at(4_000));
        assert!(!chat.is_live(ada) && chat.is_live(bob));
        assert_eq!(events(&mut chat), ["partner.reconnecting"]);
    }

    #[test]
    fn the_first_node_after_every_node_stopped_recovers_the_chat() {
        let (mut chat, ada, bob) = paired();
        // Both nodes die; nobody serves the chat for an hour.
        let back = 3_600_000;
        chat.apply(at(back), Input::Join { node: 33 });
        let seen = events(&mut chat);
        assert!(!seen.contains(&"partner.disconnected"), "{seen:?}");
        assert_eq!(chat.live_nodes(), [33]);
        // As after a restart, everyone has a fresh stream grace from now.
        assert!(chat.is_live(ada) && chat.is_live(bob));
        chat.apply(at(back + 1_000), Input::Hold { session: ada, what: Hold::Stream, node: Some(33) });
        chat.apply(at(back + 1_000), Input::Hold { session: bob, what: Hold::Stream, node: Some(33) });
        chat.tick(at(back + 5_000));
        assert!(chat.is_live(ada) && chat.is_live(bob));
        assert!(!events(&mut chat).contains(&"partner.disconnected"));
    }

    #[test]
    fn nodes_and_their_holds_survive_a_snapshot() {
        let (mut chat, ada, _) = paired();
        let mut restored = Chat::restore(&chat.snapshot().expect("snapshot")).expect("restore");
        assert_eq!(restored.live_nodes(), [NODE_A, NODE_B]);
        for chat in [&mut chat, &mut restored] {
            beat(chat, 0, 20_000);
            assert!(!chat.is_live(ada));
        }
        let old = serde_json::json!({"input": "hold", "session": 1, "what": "stream"});
        let old: Input = serde_json::from_value(old).expect("a hold logged before nodes reads back");
        assert!(matches!(old, Input::Hold { node: None, .. }));
    }
}
