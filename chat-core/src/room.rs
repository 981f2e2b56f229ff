//! A room: two participants, their recent messages, and their typing indicators.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::DisconnectReason;
use crate::event::Envelope;
use crate::time::Time;

/// A typing indicator that is on until `until` unless refreshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Typing {
    pub(crate) until: Time,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Room {
    pub(crate) id: Arc<str>,
    /// Participant keys, in the order they were queued.
    pub(crate) members: [u64; 2],
    pub(crate) shared_interests: Vec<Arc<str>>,
    pub(crate) ended: Option<(Time, DisconnectReason)>,
    /// Messages sent so far (the seq of the newest).
    pub(crate) sent: u64,
    /// `(room seq, the envelope as delivered to the partner)`: shared with the inbox and
    /// the outbound queue, so keeping history costs one reference per message.
    pub(crate) history: VecDeque<(u64, Arc<Envelope>)>,
    /// Approximate bytes of `history`.
    history_bytes: usize,
    pub(crate) typing: [Option<Typing>; 2],
}

impl Room {
    pub(crate) fn new(id: Arc<str>, members: [u64; 2], shared_interests: Vec<Arc<str>>) -> Self {
        Room {
            id,
            members,
            shared_interests,
            ended: None,
            sent: 0,
            history: VecDeque::new(),
            history_bytes: 0,
            typing: [None, None],
        }
    }

    /// The index (0 or 1) of `participant` among the members.
    pub(crate) fn member_index(&self, participant: u64) -> Option<usize> {
        self.members.iter().position(|&m| m == participant)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.ended.is_none()
    }

    /// Drops the oldest messages until about `bytes` are left (for an ended room).
    pub(crate) fn shrink_history(&mut self, bytes: usize) {
        while self.history_bytes > bytes {
            let Some((_, old)) = self.history.pop_front() else { break };
            self.history_bytes = self.history_bytes.saturating_sub(old.approx_bytes());
        }
    }

    /// Appends a message, keeping at most `keep` of them and about `bytes` (the newest
    /// is kept even if it alone is larger).
    pub(crate) fn record(&mut self, seq: u64, envelope: Arc<Envelope>, keep: usize, bytes: usize) {
        if keep == 0 {
            return;
        }
        self.history_bytes += envelope.approx_bytes();
        self.history.push_back((seq, envelope));
        while self.history.len() > 1 && (self.history.len() > keep || self.history_bytes > bytes) {
            if let Some((_, old)) = self.history.pop_front() {
                self.history_bytes = self.history_bytes.saturating_sub(old.approx_bytes());
            }
        }
    }
}
