//! Merges the two ways events arrive (pushed notifications and `wait_for_events` polls)
//! into one stream without duplicates, in `seq` order.
//!
//! Pushes are the fast path but carry no delivery guarantee (an SSE stream can drop and
//! replay), so the poll is the source of truth: a push is delivered at once only when it
//! is the very next seq; anything after a gap is held until a poll says whether the gap
//! is real (the events are in the poll) or permanent (evicted, or fetched elsewhere).
//! Pure and generic over the payload, so it is tested without a server.

use std::collections::BTreeMap;

/// Held pushes beyond this many are dropped (the poll brings them again).
const HELD_LIMIT: usize = 512;

/// The merge state for one identity's event stream.
#[derive(Debug)]
pub struct Sequencer<T> {
    /// Highest seq delivered; also the acknowledgement cursor for the next poll.
    delivered: u64,
    /// Whether a poll has answered since the last reset (before that, even seq 1 may
    /// not be the first unread event).
    synced: bool,
    held: BTreeMap<u64, T>,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Sequencer { delivered: 0, synced: false, held: BTreeMap::new() }
    }
}

impl<T> Sequencer<T> {
    /// The cursor to pass as `after_seq`: everything up to it has been delivered.
    pub fn cursor(&self) -> u64 {
        self.delivered
    }

    /// Starts over for a new identity, whose seqs begin again at 1.
    pub fn reset(&mut self) {
        *self = Sequencer::default();
    }

    /// A pushed event: returns what can be delivered now, in order.
    pub fn on_push(&mut self, seq: u64, item: T) -> Vec<T> {
        if seq <= self.delivered {
            return Vec::new();
        }
        self.held.insert(seq, item);
        if self.held.len() > HELD_LIMIT {
            self.held.pop_last();
        }
        if self.synced { self.release_contiguous() } else { Vec::new() }
    }

    /// A poll result: `items` in any order; `complete_upto` is the seq up to which the
    /// poll saw every event that still exists (the server's newest seq, or the last
    /// returned one when the reply was cut short). Returns what can be delivered, in order.
    pub fn on_poll(&mut self, items: Vec<(u64, T)>, complete_upto: u64) -> Vec<T> {
        self.synced = true;
        for (seq, item) in items {
            if seq > self.delivered {
                self.held.insert(seq, item);
            }
        }
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > complete_upto {
                break;
            }
            self.delivered = *entry.key();
            out.push(entry.remove());
        }
        // Gaps up to `complete_upto` are permanent: acknowledge past them.
        self.delivered = self.delivered.max(complete_upto);
        out.extend(self.release_contiguous());
        out
    }

    fn release_contiguous(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            self.delivered += 1;
            out.push(entry.remove());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(items: &[(u64, &'static str)]) -> Vec<(u64, &'static str)> {
        items.to_vec()
    }

    #[test]
    fn pushes_wait_for_the_first_poll_then_flow() {
        let mut s = Sequencer::default();
        assert!(s.on_push(1, "a").is_empty(), "not synced yet");
        assert_eq!(s.on_poll(seqs(&[(1, "a")]), 1), vec!["a"]);
        assert_eq!(s.on_push(2, "b"), vec!["b"]);
        assert_eq!(s.on_push(2, "b"), Vec::<&str>::new(), "duplicate push");
        assert_eq!(s.on_poll(seqs(&[(2, "b"), (3, "c")]), 3), vec!["c"], "poll overlaps pushes");
        assert_eq!(s.cursor(), 3);
    }

    #[test]
    fn a_gap_holds_later_pushes_until_a_poll_fills_it() {
        let mut s = Sequencer::default();
        s.on_poll(Vec::new(), 0);
        assert!(s.on_push(2, "b").is_empty(), "1 is missing");
        assert!(s.on_push(3, "c").is_empty());
        assert_eq!(s.on_poll(seqs(&[(1, "a"), (2, "b")]), 2), vec!["a", "b", "c"]);
        assert_eq!(s.cursor(), 3);
    }

    #[test]
    fn a_permanent_gap_is_skipped_when_the_poll_has_seen_past_it() {
        let mut s = Sequencer::default();
        s.on_poll(Vec::new(), 0);
        assert!(s.on_push(3, "c").is_empty());
        assert_eq!(s.on_poll(seqs(&[(3, "c")]), 3), vec!["c"], "1 and 2 were evicted");
        assert_eq!(s.cursor(), 3);
        assert_eq!(s.on_poll(Vec::new(), 5), Vec::<&str>::new());
        assert_eq!(s.cursor(), 5, "acknowledges past gaps the server reports");
    }

    #[test]
    fn a_cut_short_poll_keeps_later_pushes_held() {
        let mut s = Sequencer::default();
        s.on_poll(Vec::new(), 0);
        assert!(s.on_push(5, "e").is_empty());
        assert_eq!(s.on_poll(seqs(&[(2, "b"), (1, "a")]), 2), vec!["a", "b"]);
        assert_eq!(s.cursor(), 2);
        assert_eq!(s.on_poll(seqs(&[(3, "c"), (5, "e")]), 5), vec!["c", "e"]);
    }

    #[test]
    fn reset_starts_a_new_stream() {
        let mut s = Sequencer::default();
        s.on_poll(seqs(&[(1, "a"), (2, "b")]), 2);
        s.reset();
        assert_eq!(s.cursor(), 0);
        assert!(s.on_push(1, "new").is_empty());
        assert_eq!(s.on_poll(seqs(&[(1, "new")]), 1), vec!["new"]);
    }
}
