//! Binding sessions to identities, and proving ownership with resume tokens.
//!
//! The rule: an identity, once bound, belongs to whoever holds its token, for as long as
//! the core keeps it (online, reconnecting or offline). Binding an existing id needs the
//! token (`resume_token` on the binding command, or `Resume`); without it the id is
//! taken. Generated roulette ids are the server's and unguessable, so only their owner
//! ever has the token. Ids an operator registered start out offline with their secret as
//! the token.

use std::sync::Arc;

use crate::chat::Chat;
use crate::error::ChatError;
use crate::ids::{SessionId, constant_time_eq, validate_id};
use crate::participant::{Activity, Participant, Presence};
use crate::reply::{ActivityState, IdentityReply};

/// The outcome of binding: the participant, and its token if this call bound it.
pub(crate) struct Bound {
    pub(crate) key: u64,
    pub(crate) new_token: Option<Arc<str>>,
}

impl Chat {
    /// Binds `session` to `requested` (or to a generated id when `None` and the session
    /// has no identity). `default_name` names a newly created participant.
    pub(crate) fn bind(
        &mut self,
        session: SessionId,
        field: &'static str,
        requested: Option<&str>,
        token: Option<&str>,
        default_name: impl FnOnce(&str) -> Arc<str>,
    ) -> Result<Bound, ChatError> {
        if let Some(requested) = requested {
            validate_id(field, requested, &self.limits)?;
        }
        if let Some(key) = self.sessions.get(&session).and_then(|s| s.bound) {
            let current = self.participants.get(&key).map(|p| p.id.clone()).unwrap_or_default();
            return match requested {
                Some(r) if *r != *current => Err(ChatError::AlreadyIdentified {
                    current: current.to_string(),
                    requested: r.to_string(),
                }),
                _ => Ok(Bound { key, new_token: None }),
            };
        }
        let id: Arc<str> = match requested {
            Some(r) => r.into(),
            None => self.fresh_user_id(),
        };
        if let Some(&key) = self.by_id.get(&id) {
            let Some(p) = self.participants.get(&key) else {
                return Err(ChatError::IdentityTaken { id: id.to_string() });
            };
            return match token {
                None => Err(ChatError::IdentityTaken { id: id.to_string() }),
                Some(token) if !constant_time_eq(&p.token, token) => {
                    Err(ChatError::BadResumeToken { id: id.to_string() })
                }
                Some(_) => {
                    self.attach(session, key);
                    Ok(Bound { key, new_token: None })
                }
            };
        }
        let name = default_name(&id);
        let key = self.create_participant(id, name, Presence::Online(session))?;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.bound = Some(key);
        }
        let token = self.participants.get(&key).map(|p| p.token.clone());
        Ok(Bound { key, new_token: token })
    }

    /// Creates a participant record; fails at `max_participants`.
    pub(crate) fn create_participant(
        &mut self,
        id: Arc<str>,
        name: Arc<str>,
        presence: Presence,
    ) -> Result<u64, ChatError> {
        if self.participants.len() >= self.limits.max_participants {
            return Err(ChatError::ServerFull { capacity: self.limits.max_participants });
        }
        self.next_participant += 1;
        let key = self.next_participant;
        let token = self.ids.resume_token();
        let p = Participant::new(id.clone(), name, token, presence, self.now, self.limits.rate_messages);
        self.participants.insert(key, p);
        self.by_id.insert(id, key);
        if let Presence::Offline { .. } = presence {
            self.go_offline(key);
        }
        Ok(key)
    }

    fn fresh_user_id(&mut self) -> Arc<str> {
        loop {
            let (_, id) = self.ids.tagged("u_");
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    /// Makes `session` the live session of participant `key`, detaching any previous one
    /// (a lost one expires), and pushes what waited while it was away.
    fn attach(&mut self, session: SessionId, key: u64) {
        let old = self.participants.get(&key).and_then(|p| match p.presence {
            Presence::Online(s) | Presence::Reconnecting { session: Some(s), .. } => Some(s),
            _ => None,
        });
        if let Some(old) = old.filter(|old| *old != session)
            && let Some(record) = self.sessions.get_mut(&old)
        {
            record.bound = None;
            record.taken_over = self.participants.get(&key).map(|p| p.id.clone());
            if !self.is_live(old) {
                self.expire(old);
            }
        }
        self.reattach(session, key);
    }

    /// `Resume`: re-attaches an identity to this session if the token matches. A live
    /// session holding it is detached (the newest connection wins).
    pub(crate) fn resume(
        &mut self,
        session: SessionId,
        user_id: &str,
        token: &str,
    ) -> Result<IdentityReply, ChatError> {
        validate_id("user_id", user_id, &self.limits)?;
        let bad = || ChatError::BadResumeToken { id: user_id.to_string() };
        let key = *self.by_id.get(user_id).ok_or_else(bad)?;
        let p = self.participants.get(&key).ok_or_else(bad)?;
        if !constant_time_eq(&p.token, token) {
            return Err(bad());
        }
        match self.sessions.get(&session).and_then(|s| s.bound) {
            Some(current) if current == key => {}
            Some(current) => {
                let current = self.participants.get(&current).map(|p| p.id.to_string()).unwrap_or_default();
                return Err(ChatError::AlreadyIdentified { current, requested: user_id.to_string() });
            }
            None => self.attach(session, key),
        }
        if let Some(p) = self.participants.get_mut(&key) {
            p.last_seen = self.now;
        }
        Ok(self.identity(Some(key)))
    }

    /// `Identity`: who the session is and what it is doing.
    pub(crate) fn identity(&self, bound: Option<u64>) -> IdentityReply {
        let Some(p) = bound.and_then(|k| self.participants.get(&k)) else {
            return IdentityReply {
                user_id: None,
                display_name: None,
                resume_token: None,
                checked_in: false,
                activity: ActivityState::Idle,
                pending_events: 0,
                pending_messages: 0,
                last_seq: 0,
            };
        };
        let activity = match p.activity {
            Activity::Idle => ActivityState::Idle,
            Activity::Queued { ticket, .. } => {
                ActivityState::Waiting { position: self.queue_position(ticket) }
            }
            Activity::Chatting { room } => match self.rooms.get(&room) {
                Some(r) => {
                    ActivityState::Chatting { room_id: r.id.clone(), partner: self.partner_info(r, p) }
                }
                None => ActivityState::Idle,
            },
        };
        IdentityReply {
            user_id: Some(p.id.clone()),
            display_name: Some(p.name.clone()),
            resume_token: Some(p.token.clone()),
            checked_in: p.client.is_some(),
            activity,
            pending_events: p.inbox.len(),
            pending_messages: p.inbox.direct_len(),
            last_seq: p.inbox.last_seq(),
        }
    }
}
