//! Where the core's input log and snapshots are kept (`--store`).
//!
//! The core is deterministic, so the chat *is* its inputs: a store keeps every input
//! (with its time) in order, and now and then a snapshot of the whole core at a log
//! position. Start-up restores the newest readable snapshot and replays the inputs after
//! it (see `state/journal.rs` for the write path and `docs/ARCHITECTURE.md`).
//!
//! - `memory` (the default): nothing is kept; a restart starts afresh.
//! - `sqlite:PATH`: one SQLite file (see [`sqlite`]).
//! - `redis://HOST:PORT[/DB]`: a Redis Stream shared by several nodes (see [`redis`] and
//!   `state/replica.rs`): each node appends its inputs and applies everyone's.
//!
//! A [`Store`] is driven by one thread, the journal's: it never sees concurrent calls,
//! and may block. The shape is that of a single writer that owns the order of its log.
//! The shared Redis log has several writers and the log decides the order, so it is not
//! a [`Store`]: its nodes append, then apply what they read back.

pub mod redis;
pub mod sqlite;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// What `--store` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// Nothing is written.
    Memory,
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A Redis server (its URL), shared by every node of the chat.
    Redis(String),
}

impl StoreUrl {
    /// Whether the chat outlives the process with this store.
    pub fn is_durable(&self) -> bool {
        !matches!(self, StoreUrl::Memory)
    }
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("sqlite: needs a file path, e.g. sqlite:./mcp-chat.db".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("redis://") {
            return Ok(StoreUrl::Redis(text.to_owned()));
        }
        Err(format!(
            "unknown store '{text}': use memory, sqlite:PATH (e.g. sqlite:./mcp-chat.db) or redis://HOST:PORT[/DB]"
        ))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory"),
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Redis(url) => f.write_str(url),
        }
    }
}

/// How hard a durable store makes sure a commit reached the disk (`--store-sync`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Sync {
    /// Every commit is flushed to the disk (fsync) before its requests are answered: an
    /// answered request survives a crash of the process and a power loss.
    #[default]
    Full,
    /// Commits reach the operating system before answers; the disk is flushed at
    /// checkpoints. Survives a crash of the process, not always a power loss (the last
    /// commits may be lost).
    Normal,
    /// No flushing at all (tests, throwaway servers).
    Off,
}

/// A failed store operation, worded for an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// One logged input, as stored: its position, its time (ms since the epoch) and the
/// input's JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1, 2, 3…: positions have no gaps.
    pub position: u64,
    /// When it was applied.
    pub at_ms: u64,
    /// The [`chat_core::Input`] as JSON.
    pub input: Vec<u8>,
}

/// A durable home for the log and its snapshots.
pub trait Store: Send + 'static {
    /// Positions of the snapshots kept, newest first.
    fn snapshots(&mut self) -> Result<Vec<u64>, StoreError>;
    /// The snapshot taken after the input at `position` (0: before any).
    fn read_snapshot(&mut self, position: u64) -> Result<Vec<u8>, StoreError>;
    /// Calls `each` with every record after `position`, in order.
    fn read_log(
        &mut self,
        after: u64,
        each: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Appends `records` (consecutive positions after the last one) in one atomic,
    /// durable commit: when this returns `Ok` they survive a crash; on `Err` none of them
    /// was kept.
    fn append(&mut self, records: &[Record]) -> Result<(), StoreError>;
    /// Keeps a snapshot of the state after `position`, and drops what it makes redundant
    /// (all but the two newest snapshots, and the inputs the older of those covers).
    fn save_snapshot(&mut self, position: u64, taken_ms: u64, state: &[u8]) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!("memory".parse(), Ok(StoreUrl::Memory));
        assert_eq!("sqlite:./a.db".parse(), Ok(StoreUrl::Sqlite("./a.db".into())));
        assert_eq!("sqlite:///var/lib/c.db".parse(), Ok(StoreUrl::Sqlite("/var/lib/c.db".into())));
        assert!("sqlite:".parse::<StoreUrl>().unwrap_err().contains("file path"));
        assert_eq!(
            "redis://127.0.0.1:6379/2".parse(),
            Ok(StoreUrl::Redis("redis://127.0.0.1:6379/2".into()))
        );
        assert!("rediss://x".parse::<StoreUrl>().unwrap_err().contains("unknown store"));
        assert_eq!(StoreUrl::Sqlite("a.db".into()).to_string(), "sqlite:a.db");
    }
}
