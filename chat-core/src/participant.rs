//! A participant: one identity (user id / client id) with its presence, roulette state,
//! inbox and rate limit.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ids::SessionId;
use crate::inbox::Inbox;
use crate::rate::RateLimiter;
use crate::reply::PresenceStatus;
use crate::time::Time;

/// Whether the participant has a live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Presence {
    /// Bound to this live session.
    Online(SessionId),
    /// Connection lost at `since`; the room (if any) is kept until the grace runs out.
    Reconnecting {
        since: Time,
        /// The lost session, while it can still come back by itself (`None`: it is gone,
        /// and only `Resume` from another session brings the participant back).
        session: Option<SessionId>,
        /// The newest event seq when the connection was lost: later events were never
        /// pushed, so they are pushed on return or reported as undelivered.
        seq: u64,
        /// The queue ticket and waiting start it held, restored on return.
        queued: Option<(u64, Time)>,
    },
    /// No session, no room, not queued.
    Offline { since: Time },
}

/// What the participant is doing in the roulette.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Activity {
    /// Neither queued nor chatting.
    Idle,
    /// Waiting in the queue under `ticket` since `since`.
    Queued { ticket: u64, since: Time },
    /// In this room.
    Chatting { room: u64 },
}

/// Agent-messaging data, present once the identity checked in.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ClientMeta {
    pub(crate) capabilities: Vec<Arc<str>>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Participant {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) token: Arc<str>,
    pub(crate) presence: Presence,
    /// Bumped on every presence change, so stale grace/forget timers can tell.
    pub(crate) generation: u64,
    pub(crate) activity: Activity,
    pub(crate) interests: Vec<Arc<str>>,
    pub(crate) client: Option<ClientMeta>,
    pub(crate) last_seen: Time,
    /// Ids this participant blocked; neither side is ever matched with the other.
    pub(crate) blocked: Vec<Arc<str>>,
    /// The last partner and until when the two are not paired again.
    pub(crate) cooldown: Option<(Arc<str>, Time)>,
    pub(crate) inbox: Inbox,
    pub(crate) rate: RateLimiter,
    /// Registered by the operator: never forgotten.
    pub(crate) registered: bool,
    /// Results of recent sends by `client_message_id`, oldest first.
    pub(crate) sent_keys: std::collections::VecDeque<(Arc<str>, Sent)>,
    /// Direct-message typing indicators this participant shows: recipient key -> until
    /// when, unless refreshed. Only recipients that were told `typing: true` are here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) typing_to: BTreeMap<u64, Time>,
}

/// The result of a send, kept for its `client_message_id`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Sent {
    Room(crate::reply::SentRoomReply),
    Direct(crate::reply::SentDirectReply),
}

impl Sent {
    pub(crate) fn of(reply: &crate::reply::Reply) -> Option<Sent> {
        match reply {
            crate::reply::Reply::SentRoom(r) => Some(Sent::Room(r.clone())),
            crate::reply::Reply::SentDirect(r) => Some(Sent::Direct(r.clone())),
            _ => None,
        }
    }

    pub(crate) fn reply(&self) -> crate::reply::Reply {
        match self {
            Sent::Room(r) => crate::reply::Reply::SentRoom(r.clone()),
            Sent::Direct(r) => crate::reply::Reply::SentDirect(r.clone()),
        }
    }
}

impl Participant {
    pub(crate) fn new(
        id: Arc<str>,
        name: Arc<str>,
        token: Arc<str>,
        presence: Presence,
        now: Time,
        rate_capacity: u32,
    ) -> Self {
        Participant {
            id,
            name,
            token,
            presence,
            generation: 0,
            activity: Activity::Idle,
            interests: Vec::new(),
            client: None,
            last_seen: now,
            blocked: Vec::new(),
            cooldown: None,
            inbox: Inbox::default(),
            rate: RateLimiter::new(now, rate_capacity),
            registered: false,
            sent_keys: std::collections::VecDeque::new(),
            typing_to: BTreeMap::new(),
        }
    }

    /// The live session, if any.
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self.presence {
            Presence::Online(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn presence_status(&self) -> PresenceStatus {
        match self.presence {
            Presence::Online(_) => PresenceStatus::Online,
            Presence::Reconnecting { .. } => PresenceStatus::Reconnecting,
            Presence::Offline { .. } => PresenceStatus::Offline,
        }
    }

    /// Whether the roulette may pair these two right now (blocks and cooldowns both ways).
    pub(crate) fn may_pair_with(&self, other: &Participant, now: Time) -> bool {
        let cooling = |a: &Participant, b: &Participant| {
            a.cooldown.as_ref().is_some_and(|(id, until)| *id == b.id && now < *until)
        };
        !self.blocked.contains(&other.id)
            && !other.blocked.contains(&self.id)
            && !cooling(self, other)
            && !cooling(other, self)
    }
}
