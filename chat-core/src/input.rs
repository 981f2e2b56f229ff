//! [`Input`]: every change to the core as one value, and [`Chat::apply`], the one entry
//! point that carries it out.
//!
//! The core is deterministic: the same [`crate::Config`] and the same inputs at the same
//! times give the same state, replies and events. So a log of `(time, input)` pairs is
//! the chat: replaying it into a fresh [`Chat`] rebuilds the state exactly, and several
//! replicas applying one log agree. Adapters that keep such a log append each input
//! before applying it (see `docs/ARCHITECTURE.md`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chat::{Chat, SessionEnd};
use crate::command::Command;
use crate::config::{Limits, Registered};
use crate::error::ChatError;
use crate::ids::SessionId;
use crate::liveness::Hold;
use crate::reply::Reply;
use crate::time::Time;

/// One change to the core. Serializes as `{"input": "...", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A new transport session ([`Chat::open_keyed_session`]).
    Open {
        /// The adapter's key for it (an `Mcp-Session-Id`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<Arc<str>>,
        /// The adapter's opaque note about it (its protocol revision).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<Arc<str>>,
        /// A leased session (no transport session behind it: its key is a handle the
        /// client passes with each call): live while it holds something and within
        /// [`crate::Limits::lease`] of its last request, then lost like any session.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        lease: bool,
    },
    /// A command from a session ([`Chat::handle`]).
    Command {
        /// The session.
        session: SessionId,
        /// What it asks.
        command: Command,
        /// The identity the caller says it acts as (the seed's `sender_id` / `client_id`
        /// arguments): it must be the session's, or binds an unbound session first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        act_as: Option<ActAs>,
    },
    /// A session holds a stream or a long request ([`Chat::hold`]).
    Hold {
        /// The session.
        session: SessionId,
        /// What it holds.
        what: Hold,
        /// The node that holds it, when several serve the chat (see `nodes.rs`): if the
        /// node is given up, the hold ends with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<u64>,
    },
    /// A hold ended ([`Chat::release`]).
    Release {
        /// The session.
        session: SessionId,
        /// What it held.
        what: Hold,
        /// The node that held it (as in [`Input::Hold`]): a release from a node whose
        /// holds already ended with it changes nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<u64>,
    },
    /// A request that is not a command ([`Chat::touch`]).
    Touch {
        /// The session.
        session: SessionId,
    },
    /// A resource subscription of a session began or ended ([`Chat::subscribe`]).
    Subscribe {
        /// The session.
        session: SessionId,
        /// The resource.
        uri: Arc<str>,
        /// Subscribed (`true`) or unsubscribed.
        on: bool,
    },
    /// The adapter ended a session ([`Chat::session_closed`]).
    Close {
        /// The session.
        session: SessionId,
        /// How.
        how: SessionEnd,
    },
    /// Time passed ([`Chat::tick`]).
    Tick,
    /// The serving process restarted on restored state ([`Chat::recover`]).
    Recover,
    /// New limits and registered clients ([`Chat::configure`]).
    Configure {
        /// The limits from now on.
        limits: Box<Limits>,
        /// Operator-registered clients.
        registered: Vec<Registered>,
    },
    /// Every room ends with `shutdown` ([`Chat::shutdown`]).
    Shutdown,
    /// A node starts serving the chat ([`Chat::node_joined`]).
    Join {
        /// The node.
        node: u64,
    },
    /// A node is alive ([`Chat::node_alive`]).
    Heartbeat {
        /// The node.
        node: u64,
    },
    /// A node stopped serving the chat ([`Chat::node_left`]).
    Leave {
        /// The node.
        node: u64,
    },
}

/// The identity a command claims to act as ([`Input::Command::act_as`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActAs {
    /// The claimed client id.
    pub id: Arc<str>,
    /// The argument it came in, for the error message.
    pub field: Arc<str>,
}

/// What a command answered, with what the adapter shows beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The command's reply.
    pub reply: Result<Reply, ChatError>,
    /// The reply of the check-in that [`Input::Command::act_as`] caused, if it did (also
    /// when the command then failed: the session is checked in either way).
    pub checkin: Option<Reply>,
    /// The session's event cursor just before the command ran ([`Chat::event_cursor`]).
    pub cursor: u64,
    /// The session's pending events just after it ([`Chat::pending_events`]).
    pub pending: usize,
}

/// What applying an input answered. Events it caused are drained as usual
/// ([`Chat::poll_outbound`], [`Chat::poll_expired`]).
// Returned once per input and moved, never stored: boxing the answer would cost an
// allocation per command for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The new session ([`Input::Open`]).
    Opened(SessionId),
    /// The command's answer ([`Input::Command`]).
    Replied(Answer),
    /// Nothing to answer.
    Done,
}

impl Applied {
    /// The command's reply, if this answered a command.
    pub fn reply(&self) -> Option<&Result<Reply, ChatError>> {
        match self {
            Applied::Replied(answer) => Some(&answer.reply),
            _ => None,
        }
    }
}

impl Chat {
    /// Carries out `input` at time `at`: the one entry point a log replays through.
    pub fn apply(&mut self, at: Time, input: Input) -> Applied {
        match input {
            Input::Open { key, meta, lease } => {
                let session = self.open_keyed_session(at, key, meta);
                if lease {
                    self.lease_session(session);
                }
                Applied::Opened(session)
            }
            Input::Command { session, command, act_as } => {
                Applied::Replied(self.command(at, session, command, act_as))
            }
            Input::Hold { session, what, node } => {
                self.hold(at, session, what);
                if let Some(node) = node {
                    self.node_hold(node, session);
                }
                Applied::Done
            }
            Input::Release { session, what, node } => {
                if node.is_none_or(|node| self.node_release(node, session)) {
                    self.release(at, session, what);
                } else {
                    self.tick(at);
                }
                Applied::Done
            }
            Input::Touch { session } => {
                self.touch(at, session);
                Applied::Done
            }
            Input::Subscribe { session, uri, on } => {
                self.subscribe(at, session, uri, on);
                Applied::Done
            }
            Input::Close { session, how } => {
                self.session_closed(at, session, how);
                Applied::Done
            }
            Input::Tick => {
                self.tick(at);
                Applied::Done
            }
            Input::Recover => {
                self.recover(at);
                Applied::Done
            }
            Input::Configure { limits, registered } => {
                self.configure(at, *limits, registered);
                Applied::Done
            }
            Input::Shutdown => {
                self.shutdown(at);
                Applied::Done
            }
            Input::Join { node } => {
                self.node_joined(at, node);
                Applied::Done
            }
            Input::Heartbeat { node } => {
                self.node_alive(at, node);
                Applied::Done
            }
            Input::Leave { node } => {
                self.node_left(at, node);
                Applied::Done
            }
        }
    }

    /// [`Input::Command`]: the implied check-in, then the command.
    fn command(&mut self, at: Time, session: SessionId, command: Command, act_as: Option<ActAs>) -> Answer {
        let mut checkin = None;
        let mut cursor = self.event_cursor(session);
        let reply = (|| {
            if let Some(claim) = act_as {
                checkin = self.act_as(at, session, claim)?;
                cursor = self.event_cursor(session);
            }
            self.handle(at, session, command)
        })();
        Answer { reply, checkin, cursor, pending: self.pending_events(session) }
    }

    /// Makes sure `session` acts as `claim.id`: its identity already, or bound to it now
    /// by a check-in (whose reply is returned).
    fn act_as(&mut self, at: Time, session: SessionId, claim: ActAs) -> Result<Option<Reply>, ChatError> {
        match self.session_user(session) {
            Some(current) if **current == *claim.id => Ok(None),
            Some(current) => Err(ChatError::IdentityMismatch {
                field: claim.field.to_string(),
                claimed: claim.id.to_string(),
                current: current.to_string(),
            }),
            None => {
                let checkin = Command::Checkin {
                    client_id: claim.id.to_string(),
                    name: None,
                    capabilities: Vec::new(),
                    resume_token: None,
                };
                self.handle(at, session, checkin).map(Some)
            }
        }
    }
}
