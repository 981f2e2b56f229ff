//! Per-stream arrival bookkeeping: every sequence number must arrive exactly once.

/// Arrivals of one stream, as a bitmap of the sequence numbers seen.
#[derive(Debug, Default)]
pub struct SeqTracker {
    seen: Vec<u64>,
    highest: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Arrivals of a number already received.
    pub duplicates: u64,
    /// Arrivals below the highest number already received (late, not duplicate).
    pub reordered: u64,
}

/// How an arrival was classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First time this number arrived.
    Fresh,
    /// Seen before.
    Duplicate,
}

impl SeqTracker {
    /// Records sequence number `seq` (from 1).
    pub fn record(&mut self, seq: u64) -> Arrival {
        let (word, bit) = (usize::try_from(seq / 64).unwrap_or(usize::MAX), seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        if seq < self.highest {
            self.reordered += 1;
        }
        self.highest = self.highest.max(seq);
        Arrival::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_arrivals() {
        let mut t = SeqTracker::default();
        assert_eq!(t.record(1), Arrival::Fresh);
        assert_eq!(t.record(3), Arrival::Fresh);
        assert_eq!(t.record(2), Arrival::Fresh);
        assert_eq!(t.record(2), Arrival::Duplicate);
        assert_eq!(t.record(200), Arrival::Fresh);
        assert_eq!((t.unique, t.duplicates, t.reordered), (4, 1, 1));
    }
}
