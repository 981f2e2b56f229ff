//! The adapter's state: the core's single owner and everything per session.

pub mod clock;
pub mod durable;
pub mod guesses;
pub mod hub;
pub mod journal;
pub mod log;
pub mod notify;
pub mod outlet;
pub mod replica;
pub mod slot;
