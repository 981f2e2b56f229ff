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
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    /// Shared with the outbound queue and fetch replies, so pushing costs no copy.
    pub(crate) envelope: Arc<Envelope>,
    /// For direct messages: the sender's participant key (for expiry notices).
    pub(crate) direct_from: Option<u64>,
}

/// The per-participant event store.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    last_seq: u64,
    events: VecDeque<Stored>,
    direct: usize,
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

    /// Stores an event, assigning the next seq, and evicts the oldest non-direct event if
    /// more than `buffer` of them are held. Returns the envelope as stored.
    pub(crate) fn push(&mut self, event: Event, direct_from: Option<u64>, buffer: usize) -> &Arc<Envelope> {
        self.last_seq += 1;
        if direct_from.is_some() {
            self.direct += 1;
        } else if self.events.len() - self.direct >= buffer.max(1) {
            self.evict_oldest_non_direct();
        }
        self.events
            .push_back(Stored { envelope: Arc::new(Envelope { seq: self.last_seq, event }), direct_from });
        &self.events[self.events.len() - 1].envelope
    }

    fn evict_oldest_non_direct(&mut self) {
        if let Some(i) = self.events.iter().position(|s| s.direct_from.is_none()) {
            self.events.remove(i);
            self.evicted_unreported += 1;
            self.evicted_total += 1;
        }
    }

    /// Drops every event with `seq <= through`.
    pub(crate) fn ack(&mut self, through: u64) {
        while self.events.front().is_some_and(|s| s.envelope.seq <= through) {
            if let Some(s) = self.events.pop_front()
                && s.direct_from.is_some()
            {
                self.direct -= 1;
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
        self.events.retain(|s| {
            if taken.len() < limit
                && let Some(m) = as_direct(s)
            {
                taken.push(m);
                return false;
            }
            true
        });
        self.direct -= taken.len();
        taken
    }

    /// Removes and returns the first direct message from `sender` with `seq > after`.
    pub(crate) fn take_direct_from(&mut self, sender: u64, after: u64) -> Option<DirectMessage> {
        let start = self.events.partition_point(|s| s.envelope.seq <= after);
        let i = (start..self.events.len()).find(|&i| self.events[i].direct_from == Some(sender))?;
        let stored = self.events.remove(i)?;
        self.direct -= 1;
        as_direct(&stored)
    }

    /// Removes the direct message with this seq, if still unread (for expiry).
    pub(crate) fn remove_direct(&mut self, seq: u64) -> Option<Stored> {
        let i = self.events.binary_search_by_key(&seq, |s| s.envelope.seq).ok()?;
        self.events[i].direct_from?;
        self.direct -= 1;
        self.events.remove(i)
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
            assert_eq!(inbox.push(typing(n), None, 10).seq, n);
        }
        inbox.ack(3);
        assert_eq!(inbox.after(0, 10).iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(inbox.after(4, 10).len(), 1);
        assert_eq!(inbox.after(0, 1).len(), 1);
    }

    #[test]
    fn overflow_evicts_oldest_non_direct_and_counts_it() {
        let mut inbox = Inbox::default();
        inbox.push(dm("keep"), Some(9), 2);
        inbox.push(typing(1), None, 2);
        inbox.push(typing(2), None, 2);
        inbox.push(typing(3), None, 2);
        assert_eq!(inbox.take_evicted(), 1);
        assert_eq!(inbox.take_evicted(), 0);
        assert_eq!(inbox.after(0, 10).iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(inbox.direct_len(), 1);
    }

    #[test]
    fn direct_messages_leave_exactly_once() {
        let mut inbox = Inbox::default();
        inbox.push(dm("one"), Some(7), 10);
        inbox.push(typing(1), None, 10);
        inbox.push(dm("two"), Some(8), 10);
        assert_eq!(inbox.peek_direct(10).len(), 2);
        let got = inbox.take_direct_from(8, 0).map(|m| m.message);
        assert_eq!(got.as_deref(), Some("two"));
        assert!(inbox.take_direct_from(8, 0).is_none());
        assert_eq!(inbox.take_direct(10).len(), 1);
        assert_eq!(inbox.direct_len(), 0);
        assert!(inbox.remove_direct(1).is_none());
        assert_eq!(inbox.len(), 1);
    }
}
