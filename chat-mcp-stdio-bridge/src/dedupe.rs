//! Duplicate suppression for messages that reach the host twice.
//!
//! Duplicates come from SSE resumption: servers replay from `Last-Event-ID`
//! inclusively (rmcp does), or replay their whole cache on a fresh GET. Two
//! layers catch them:
//! * [`RecentSet`] of SSE event ids, kept per logical stream (the spec makes
//!   ids cursors within one stream, so they are not compared across streams);
//! * [`SeqDedupe`], applied to everything written to stdout: a notification
//!   whose `params.seq` and method were already written with *identical*
//!   content is dropped. The chat server numbers its notifications, so this
//!   also catches a replay that arrives with a different event id.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use serde_json::Value;

use crate::jsonrpc::Message;

/// A set that remembers only its `capacity` most recent insertions, so memory
/// stays bounded on a stream that lives for days.
#[derive(Debug)]
pub struct RecentSet<K> {
    order: VecDeque<K>,
    members: HashSet<K>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone> RecentSet<K> {
    pub fn new(capacity: usize) -> Self {
        RecentSet { order: VecDeque::new(), members: HashSet::new(), capacity: capacity.max(1) }
    }

    pub fn contains(&self, key: &K) -> bool {
        self.members.contains(key)
    }

    /// Inserts `key`; returns false if it was already present.
    pub fn insert(&mut self, key: K) -> bool {
        if self.members.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.members.remove(&old);
        }
        self.order.push_back(key.clone());
        self.members.insert(key);
        true
    }
}

/// Drops exact repeats of recently written `seq`-numbered notifications.
#[derive(Debug)]
pub struct SeqDedupe {
    recent: HashMap<(String, String), Value>,
    order: VecDeque<(String, String)>,
    capacity: usize,
}

impl SeqDedupe {
    pub fn new(capacity: usize) -> Self {
        SeqDedupe { recent: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Returns true if `msg` should be written, false if it is a duplicate.
    /// Only notifications with `params.seq` are tracked; a message with the
    /// same method and seq but different content is *not* a duplicate (seq
    /// may be scoped per room or per peer), and replaces the remembered one.
    pub fn admit(&mut self, msg: &Message) -> bool {
        if !msg.is_notification() {
            return true;
        }
        let (Some(method), Some(seq)) = (msg.method(), msg.value().get("params").and_then(|p| p.get("seq")))
        else {
            return true;
        };
        let key = (method.to_string(), seq.to_string());
        if let Some(previous) = self.recent.get(&key) {
            if previous == msg.value() {
                return false;
            }
            self.recent.insert(key, msg.value().clone());
            return true;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.recent.remove(&old);
        }
        self.order.push_back(key.clone());
        self.recent.insert(key, msg.value().clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_set_is_bounded() {
        let mut set = RecentSet::new(2);
        assert!(set.insert("a"));
        assert!(!set.insert("a"));
        assert!(set.insert("b"));
        assert!(set.insert("c")); // evicts "a"
        assert!(set.insert("a"));
        assert!(!set.insert("c"));
    }

    fn msg(text: &str) -> Message {
        Message::parse(text).expect("json")
    }

    #[test]
    fn seq_dedupe() {
        let mut d = SeqDedupe::new(8);
        let a = r#"{"jsonrpc":"2.0","method":"m","params":{"seq":1,"x":1}}"#;
        assert!(d.admit(&msg(a)));
        assert!(!d.admit(&msg(a)));
        // same seq, other content: delivered
        assert!(d.admit(&msg(r#"{"jsonrpc":"2.0","method":"m","params":{"seq":1,"x":2}}"#)));
        // same seq, other method: delivered
        assert!(d.admit(&msg(r#"{"jsonrpc":"2.0","method":"n","params":{"seq":1,"x":1}}"#)));
        // no seq, responses, requests: never deduped
        let plain = r#"{"jsonrpc":"2.0","method":"m","params":{}}"#;
        assert!(d.admit(&msg(plain)) && d.admit(&msg(plain)));
        let resp = r#"{"jsonrpc":"2.0","id":1,"result":{"seq":1}}"#;
        assert!(d.admit(&msg(resp)) && d.admit(&msg(resp)));
    }
}
