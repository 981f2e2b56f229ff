//! Where inputs go before they are applied, with a durable store: the journal of a
//! single node's own store, or the log several nodes share.

use chat_core::{Applied, Input};

use crate::state::journal::{Journal, Unsaved};
use crate::state::replica::Replica;

/// The input log of a durable store.
pub enum Log {
    /// `sqlite:`: this process owns the log; an input is applied once it is written.
    Journal(Journal),
    /// `redis://`: the log is shared; an input is applied when this node reads it back.
    Shared(Replica),
}

impl Log {
    /// Logs `input`; resolves with what it answered once applied.
    pub async fn submit(&self, input: Input) -> Result<Applied, Unsaved> {
        match self {
            Log::Journal(journal) => journal.submit(input).await,
            Log::Shared(replica) => replica.submit(input).await,
        }
    }

    /// Logs `input` without waiting for it.
    pub fn submit_detached(&self, input: Input) {
        match self {
            Log::Journal(journal) => journal.submit_detached(input),
            Log::Shared(replica) => replica.submit_detached(input),
        }
    }

    /// Writes what is queued and stops.
    pub async fn stop(&self) {
        match self {
            Log::Journal(journal) => journal.stop().await,
            Log::Shared(replica) => replica.stop().await,
        }
    }

    /// This node's id when several serve the chat.
    pub fn node(&self) -> Option<u64> {
        match self {
            Log::Journal(_) => None,
            Log::Shared(replica) => Some(replica.node()),
        }
    }
}
