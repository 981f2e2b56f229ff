//! Internal consistency checks, for tests and debugging.

use std::collections::HashSet;

use crate::chat::Chat;
use crate::event::Envelope;
use crate::liveness::Liveness;
use crate::participant::{Activity, Presence};

impl Chat {
    /// Checks the invariants that must hold between any two calls, returning the first
    /// violation found. Meant for tests (property tests call it after every step); it
    /// walks the whole state, so it is slow on large states.
    ///
    /// - a session is bound to at most one participant, and that participant is online
    ///   on exactly that session (and the other way round);
    /// - a participant is either idle, queued (with a matching queue entry) or chatting
    ///   in one active room that lists it; never both queued and in a room;
    /// - every active room has two distinct members chatting in it;
    /// - offline participants are idle; reconnecting ones are not queued;
    /// - inbox seqs are strictly increasing; the active-room count matches.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (session, record) in &self.sessions {
            if let Some(key) = &record.bound {
                let p = self
                    .participants
                    .get(key)
                    .ok_or(format!("{session} bound to missing participant {key}"))?;
                let expected = match record.liveness {
                    Liveness::Live => p.presence == Presence::Online(*session),
                    Liveness::Lost { .. } => {
                        matches!(p.presence, Presence::Reconnecting { session: Some(s), .. } if s == *session)
                    }
                };
                if !expected {
                    return Err(format!(
                        "{session} ({:?}) bound to {} whose presence is {:?}",
                        record.liveness, p.id, p.presence
                    ));
                }
            }
        }
        let mut queued = HashSet::new();
        for (key, p) in &self.participants {
            if self.by_id.get(&p.id) != Some(key) {
                return Err(format!("{} missing from the id index", p.id));
            }
            let held_by = match p.presence {
                Presence::Online(s) | Presence::Reconnecting { session: Some(s), .. } => Some(s),
                _ => None,
            };
            if let Some(s) = held_by
                && self.sessions.get(&s).and_then(|r| r.bound) != Some(*key)
            {
                return Err(format!("{} {:?}, but {s} is not bound to it", p.id, p.presence));
            }
            match p.activity {
                Activity::Idle => {}
                Activity::Queued { ticket, .. } => {
                    if self.queue.get(&ticket) != Some(key) {
                        return Err(format!("{} queued under ticket {ticket} not in the queue", p.id));
                    }
                    if !matches!(p.presence, Presence::Online(_)) {
                        return Err(format!("{} queued while {:?}", p.id, p.presence));
                    }
                    queued.insert(*key);
                }
                Activity::Chatting { room } => {
                    let r = self.rooms.get(&room).ok_or(format!("{} chatting in missing room", p.id))?;
                    if !r.is_active() || r.member_index(*key).is_none() {
                        return Err(format!("{} chatting in {} which is ended or not theirs", p.id, r.id));
                    }
                    if matches!(p.presence, Presence::Offline { .. }) {
                        return Err(format!("{} offline but chatting", p.id));
                    }
                }
            }
            let seqs: Vec<u64> =
                p.inbox.after(0, usize::MAX).iter().map(|e: &std::sync::Arc<Envelope>| e.seq).collect();
            if seqs.windows(2).any(|w| w[0] >= w[1]) || seqs.last().is_some_and(|&s| s > p.inbox.last_seq()) {
                return Err(format!("{} inbox seqs out of order: {seqs:?}", p.id));
            }
            if p.inbox.direct_len() != p.inbox.peek_direct(usize::MAX).len() {
                return Err(format!("{} direct-message count is off", p.id));
            }
        }
        if queued.len() != self.queue.len() {
            return Err(format!(
                "queue holds {} entries but {} participants are queued",
                self.queue.len(),
                queued.len()
            ));
        }
        let mut active = 0;
        for r in self.rooms.values().filter(|r| r.is_active()) {
            active += 1;
            let [a, b] = r.members;
            if a == b {
                return Err(format!("room {} pairs a participant with itself", r.id));
            }
            for m in r.members {
                let p = self.participants.get(&m).ok_or(format!("room {} has a missing member", r.id))?;
                if !matches!(p.activity, Activity::Chatting { room } if self.rooms.get(&room).is_some_and(|x| x.id == r.id))
                {
                    return Err(format!("{} is in active room {} but not chatting in it", p.id, r.id));
                }
            }
        }
        if active != self.stats.rooms_active {
            return Err(format!("{active} active rooms but the counter says {}", self.stats.rooms_active));
        }
        Ok(())
    }
}
