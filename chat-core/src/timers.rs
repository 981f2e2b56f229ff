//! Deadlines the core must act on, in one min-heap.
//!
//! Timers are never cancelled; each carries enough to check, when it fires, whether it
//! still applies (a generation or seq), and is ignored otherwise. `poll_timeout` may
//! therefore report a deadline at which nothing happens, which costs one empty `tick`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::ids::SessionId;
use crate::time::Time;

/// What to do when a deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub(crate) enum Timer {
    /// A lost connection's grace ran out (if `generation` still matches).
    Grace { participant: u64, generation: u64 },
    /// An unread direct message expires (if still in the inbox).
    DirectExpiry { participant: u64, seq: u64 },
    /// A typing indicator may have run out.
    Typing { room: u64, member: usize },
    /// A queued participant may match someone it could not before (its interest-only
    /// period or a rematch cooldown is over), if still queued under `ticket`.
    RetryMatch { participant: u64, ticket: u64 },
    /// An ended room's history is no longer kept.
    ForgetRoom { room: u64 },
    /// An offline participant may be forgotten (if `generation` still matches).
    ForgetParticipant { participant: u64, generation: u64 },
    /// A session with nothing held may have been silent for its whole window.
    /// Only the newest check armed for a session (`at`) counts.
    Silence { session: SessionId, generation: u64, at: Time },
    /// A lost session with no participant was not back within the reconnect grace.
    ExpireSession { session: SessionId, generation: u64 },
    /// A serving node may have been silent for `node_timeout` (if `beat` is still its
    /// latest heartbeat).
    NodeCheck { node: u64, beat: u64 },
    /// `sender`'s typing indicator to `recipient` (a direct message) may have run out.
    DirectTyping { sender: u64, recipient: u64 },
}

/// A heap of `(deadline, insertion order, timer)`; the order makes ties deterministic.
/// It serializes as the sorted list, so equal timer sets serialize equally whatever the
/// heap's internal layout.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Time, u64, Timer)>>,
    inserted: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TimersForm {
    due: Vec<(Time, u64, Timer)>,
    inserted: u64,
}

impl serde::Serialize for Timers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut due: Vec<(Time, u64, Timer)> = self.heap.iter().map(|Reverse(t)| *t).collect();
        due.sort_unstable();
        TimersForm { due, inserted: self.inserted }.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Timers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let form = TimersForm::deserialize(d)?;
        Ok(Timers { heap: form.due.into_iter().map(Reverse).collect(), inserted: form.inserted })
    }
}

impl Timers {
    pub(crate) fn set(&mut self, at: Time, timer: Timer) {
        self.inserted += 1;
        self.heap.push(Reverse((at, self.inserted, timer)));
    }

    /// The earliest deadline, if any.
    pub(crate) fn next(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Time) -> Option<(Time, Timer)> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((at, _, timer))| (at, timer))
    }
}
