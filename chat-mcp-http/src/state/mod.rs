//! The adapter's state: the core's single owner and everything per session.

pub mod clock;
pub mod guesses;
pub mod hub;
pub mod notify;
pub mod outlet;
pub mod slot;
