//! [`Input`]: every change to the core as one value, and [`Chat::apply`], the one entry
//! point that carries it out.
//!
//! The core is deterministic: the same [`crate::Config`] and the same inputs at the same
//! times give the same state, replies and events. So a log of `(time, input)` pairs is
//! the chat: replaying it into a fresh [`Chat`] rebuilds the state exactly, and several
//! replicas applying one log agree. Adapters that keep such a log append each input
//! before applying it (see `docs/ARCHITECTURE.md`).

use serde::{Deserialize, Serialize};

use crate::chat::{Chat, SessionEnd};
use crate::command::Command;
use crate::error::ChatError;
use crate::ids::SessionId;
use crate::liveness::Hold;
use crate::reply::Reply;
use crate::time::Time;

/// One change to the core. Serializes as `{"input": "...", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A new transport session ([`Chat::open_session`]).
    Open,
    /// A command from a session ([`Chat::handle`]).
    Command {
        /// The session.
        session: SessionId,
        /// What it asks.
        command: Command,
    },
    /// A session holds a stream or a long request ([`Chat::hold`]).
    Hold {
        /// The session.
        session: SessionId,
        /// What it holds.
        what: Hold,
    },
    /// A hold ended ([`Chat::release`]).
    Release {
        /// The session.
        session: SessionId,
        /// What it held.
        what: Hold,
    },
    /// A request that is not a command ([`Chat::touch`]).
    Touch {
        /// The session.
        session: SessionId,
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
    /// Every room ends with `shutdown` ([`Chat::shutdown`]).
    Shutdown,
}

/// What applying an input answered. Events it caused are drained as usual
/// ([`Chat::poll_outbound`], [`Chat::poll_expired`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The new session ([`Input::Open`]).
    Opened(SessionId),
    /// The command's reply ([`Input::Command`]).
    Replied(Result<Reply, ChatError>),
    /// Nothing to answer.
    Done,
}

impl Chat {
    /// Carries out `input` at time `at`: the one entry point a log replays through.
    pub fn apply(&mut self, at: Time, input: Input) -> Applied {
        match input {
            Input::Open => Applied::Opened(self.open_session(at)),
            Input::Command { session, command } => Applied::Replied(self.handle(at, session, command)),
            Input::Hold { session, what } => {
                self.hold(at, session, what);
                Applied::Done
            }
            Input::Release { session, what } => {
                self.release(at, session, what);
                Applied::Done
            }
            Input::Touch { session } => {
                self.touch(at, session);
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
            Input::Shutdown => {
                self.shutdown(at);
                Applied::Done
            }
        }
    }
}
