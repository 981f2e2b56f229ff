//! A participant's inbox: every event addressed to them, with a strictly increasing seq,
//! kept until acknowledged.
//!
//! Direct messages are events too; they leave the inbox when fetched (`GetMessages`,
//! `TakeReply`), acknowledged with a cursor, or expired, whichever comes first, so each is
//! delivered at most once. Other events leave when acknowledged, or, past
//! `event_buffer`, oldest first as counted evictions.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::{Envelope, Event};
use crate::ids::MessageId;
use crate::reply::DirectMessage;

/// One stored event.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stored {
    /// Shared with the outbound queue and fetch replies, so pushing costs no copy.
    pub(crate) envelope: Arc<Envelope>,
    /// For direct messages: the sender's participant key (for expiry notices).
    pub(crate) direct_from: Option<u64>,
}

/// How much of its non-direct events an inbox may keep.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// Events.
    pub(crate) count: usize,
    /// Approximate bytes ([`Envelope::approx_bytes`]).
    pub(crate) bytes: usize,
}

/// The per-participant event store.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Inbox {
    last_seq: u64,
    events: VecDeque<Stored>,
    direct: usize,
    /// Approximate bytes of the direct messages held.
    direct_bytes: usize,
    /// Approximate bytes of every other event held.
    other_bytes: usize,
    evicted_unreported: u64,
    evicted_total: u64,
}

impl Inbox {
    /// Seq of the newest event ever stored (0 = none).
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Unacknowledged events.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Unread direct messages.
    pub(crate) fn direct_len(&self) -> usize {
        self.direct
    }

    /// Approximate bytes of the unread direct messages.
    pub(crate) fn direct_bytes(&self) -> usize {
        self.direct_bytes
    }

    /// Approximate bytes of everything held.
    pub(crate) fn bytes(&self) -> usize {
        self.direct_bytes + self.other_bytes
    }

    /// Stores an event, assigning the next seq, then evicts the oldest non-direct events
    /// while more than `budget` of them are held (direct messages are never evicted: the
    /// sender is refused instead, see `mailbox_bytes`). Returns the envelope as stored.
    pub(crate) fn push(&mut self, event: Event, direct_from: Option<u64>, budget: Budget) -> &Arc<Envelope> {
        self.last_seq += 1;
        let envelope = Arc::new(Envelope { seq: self.last_seq, event });
        let size = envelope.approx_bytes();
        if direct_from.is_some() {
            self.direct += 1;
            self.direct_bytes += size;
        } else {
            self.other_bytes += size;
        }
        self.events.push_back(Stored { envelope, direct_from });
        // The newest event stays even if it alone is over the budget.
        let newest = self.last_seq;
        self.trim(budget, newest);
        &self.events[self.events.len() - 1].envelope
    }

    /// Evicts the oldest non-direct events (older than `keep`) until at most `budget` of
    /// them are held; returns how many went.
    pub(crate) fn trim(&mut self, budget: Budget, keep: u64) -> u64 {
        let mut evicted = 0;
        while self.events.len() - self.direct > budget.count.max(1) || self.other_bytes > budget.bytes {
            let Some(i) = self.events.iter().position(|s| s.direct_from.is_none() && s.envelope.seq < keep)
            else {
                break;
            };
            if let Some(s) = self.events.remove(i) {
                self.forget(&s);
            }
            evicted += 1;
        }
        self.evicted_unreported += evicted;
        self.evicted_total += evicted;
        evicted
    }

    /// Updates the counters for a stored event that left.
    fn forget(&mut self, s: &Stored) {
        let size = s.envelope.approx_bytes();
        if s.direct_from.is_some() {
            self.direct -= 1;
            self.direct_bytes = self.direct_bytes.saturating_sub(size);
        } else {
            self.other_bytes = self.other_bytes.saturating_sub(size);
        }
    }

    /// Drops every event with `seq <= through`.
    pub(crate) fn ack(&mut self, through: u64) {
        while self.events.front().is_some_and(|s| s.envelope.seq <= through) {
            if let Some(s) = self.events.pop_front() {
                self.forget(&s);
            }
        }
    }

    /// Up to `limit` events with `seq > after`, oldest first.
    pub(crate) fn after(&self, after: u64, limit: usize) -> Vec<Arc<Envelope>> {
        let start = self.events.partition_point(|s| s.envelope.seq <= after);
        self.events.range(start..).take(limit).map(|s| s.envelope.clone()).collect()
    }

    /// Evictions since the last call, resetting the count.
    pub(crate) fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted_unreported)
    }

    /// Evictions over the inbox's lifetime.
    pub(crate) fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    /// What a participant coming back may have missed, oldest first: every pending
    /// direct message, and every pending event with `seq > after` (stored while it had
    /// no connection, so never pushed).
    pub(crate) fn missed(&self, after: u64) -> impl Iterator<Item = &Arc<Envelope>> {
        self.events
            .iter()
            .filter(move |s| s.direct_from.is_some() || s.envelope.seq > after)
            .map(|s| &s.envelope)
    }

    /// Ids of the pending messages of room `room_id` with `seq > after`, oldest first.
    pub(crate) fn room_messages_after(&self, room_id: &str, after: u64) -> Vec<MessageId> {
        let start = self.events.partition_point(|s| s.envelope.seq <= after);
        self.events
            .range(start..)
            .filter_map(|s| match &s.envelope.event {
                Event::MessageReceived(m) if m.room_id.as_deref() == Some(room_id) => Some(m.message_id),
                _ => None,
            })
            .collect()
    }

    /// Pending direct messages, oldest first, without removing them.
    pub(crate) fn peek_direct(&self, limit: usize) -> Vec<DirectMessage> {
        self.events.iter().filter_map(as_direct).take(limit).collect()
    }

    /// Removes and returns up to `limit` direct messages, oldest first.
    pub(crate) fn take_direct(&mut self, limit: usize) -> Vec<DirectMessage> {
        let mut taken = Vec::new();
        let mut bytes = 0;
        self.events.retain(|s| {
            if taken.len() < limit
                && let Some(m) = as_direct(s)
            {
                taken.push(m);
                bytes += s.envelope.approx_bytes();
                return false;
            }
            true
        });
        self.direct -= taken.len();
        self.direct_bytes = self.direct_bytes.saturating_sub(bytes);
        taken
    }

    /// Removes and returns the first direct message from `sender` with `seq > after`.
    pub(crate) fn take_direct_from(&mut self, sender: u64, after: u64) -> Option<DirectMessage> {
        let start = self.events.partition_point(|s| s.envelope.seq <= after);
        let i = (start..self.events.len()).find(|&i| self.events[i].direct_from == Some(sender))?;
        let stored = self.events.remove(i)?;
        self.forget(&stored);
        as_direct(&stored)
    }

    /// Removes the direct message with this seq, if still unread (for expiry).
    pub(crate) fn remove_direct(&mut self, seq: u64) -> Option<Stored> {
        let i = self.events.binary_search_by_key(&seq, |s| s.envelope.seq).ok()?;
        self.events[i].direct_from?;
        let stored = self.events.remove(i)?;
        self.forget(&stored);
        Some(stored)
    }
}

fn as_direct(s: &Stored) -> Option<DirectMessage> {
    match (&s.envelope.event, s.direct_from) {
        (Event::MessageReceived(m), Some(_)) => Some(DirectMessage {
            seq: s.envelope.seq,
            message_id: m.message_id,
            from: m.from.clone(),
            from_name: m.from_name.clone(),
            message: m.message.clone(),
            timestamp: m.timestamp,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MessageReceived, PartnerTyping};
    use crate::time::Time;

    /// A count budget with room to spare in bytes.
    fn budget(count: usize) -> Budget {
        Budget { count, bytes: usize::MAX }
    }

    fn typing(n: u64) -> Event {
        Event::PartnerTyping(PartnerTyping { room_id: format!("r{n}").into(), typing: true })
    }

    fn dm(text: &str) -> Event {
        Event::MessageReceived(MessageReceived {
            room_id: None,
            message_id: crate::ids::MessageId(text.len() as u64),
            from: "a".into(),
            from_name: "A".into(),
            message: text.into(),
            timestamp: Time::ZERO,
        })
    }

    #[test]
    fn seq_increases_and_ack_drops_through_cursor() {
        let mut inbox = Inbox::default();
        for n in 1..=5 {
            assert_eq!(inbox.push(typing(n), None, budget(10)).seq, n);
        }
        inbox.ack(3);
        assert_eq!(inbox.after(0, 10).iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(inbox.after(4, 10).len(), 1);
        assert_eq!(inbox.after(0, 1).len(), 1);
    }

    #[test]
    fn overflow_evicts_oldest_non_direct_and_counts_it() {
        let mut inbox = Inbox::default();
        inbox.push(dm("keep"), Some(9), budget(2));
        inbox.push(typing(1), None, budget(2));
        inbox.push(typing(2), None, budget(2));
        inbox.push(typing(3), None, budget(2));
        assert_eq!(inbox.take_evicted(), 1);
        assert_eq!(inbox.take_evicted(), 0);
        assert_eq!(inbox.after(0, 10).iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(inbox.direct_len(), 1);
    }

    #[test]
    fn direct_messages_leave_exactly_once() {
        let mut inbox = Inbox::default();
        inbox.push(dm("one"), Some(7), budget(10));
        inbox.push(typing(1), None, budget(10));
        inbox.push(dm("two"), Some(8), budget(10));
        assert_eq!(inbox.peek_direct(10).len(), 2);
        let got = inbox.take_direct_from(8, 0).map(|m| m.message);
        assert_eq!(got.as_deref(), Some("two"));
        assert!(inbox.take_direct_from(8, 0).is_none());
        assert_eq!(inbox.take_direct(10).len(), 1);
        assert_eq!(inbox.direct_len(), 0);
        assert!(inbox.remove_direct(1).is_none());
        assert_eq!(inbox.len(), 1);
    }

    #[test]
    fn a_byte_budget_evicts_the_oldest_and_keeps_the_accounting_right() {
        let mut inbox = Inbox::default();
        let big = "x".repeat(1000);
        let budget = Budget { count: 100, bytes: 2 * (1000 + 200) };
        let room = |text: &str| match dm(text) {
            Event::MessageReceived(mut m) => {
                m.room_id = Some("r".into());
                Event::MessageReceived(m)
            }
            other => other,
        };
        for _ in 0..5 {
            inbox.push(room(&big), None, budget);
        }
        assert_eq!(inbox.len(), 2, "only what fits in the byte budget is kept");
        assert_eq!(inbox.take_evicted(), 3);
        inbox.push(dm(&big), Some(1), budget);
        assert_eq!(inbox.direct_len(), 1, "direct messages are never evicted");
        assert!(inbox.direct_bytes() > 1000);
        inbox.take_direct(10);
        assert_eq!(inbox.direct_bytes(), 0);
        assert_eq!(
            inbox.trim(Budget { count: 100, bytes: 0 }, u64::MAX),
            2,
            "an offline budget of 0 drops the rest"
        );
        assert_eq!(inbox.bytes(), 0);
    }
}
