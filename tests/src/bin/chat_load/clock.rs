//! One monotonic clock for the whole process, in nanoseconds.
//!
//! Senders stamp each message with this clock and receivers read it back, which works
//! because both run in this process: no clock synchronisation is involved.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The tokio instant of a clock reading, for `sleep_until`.
pub fn instant_at(ns: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(epoch() + Duration::from_nanos(ns))
}

/// Sleeps until the clock reads `ns` (returns at once if it already has).
pub async fn sleep_until(ns: u64) {
    tokio::time::sleep_until(instant_at(ns)).await;
}

/// The phases of a measured run: load starts at `start`, measuring starts at `warm_end`
/// and the load stops at `end`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// When the load starts.
    pub start: u64,
    /// When measuring starts (after the warm-up).
    pub warm_end: u64,
    /// When the load stops.
    pub end: u64,
}

impl Window {
    /// A window starting now.
    pub fn starting_now(warmup: Duration, measured: Duration) -> Window {
        let start = now_ns();
        let warm_end = start + u64::try_from(warmup.as_nanos()).unwrap_or(u64::MAX / 4);
        let end = warm_end + u64::try_from(measured.as_nanos()).unwrap_or(u64::MAX / 4);
        Window { start, warm_end, end }
    }

    /// Whether a clock reading falls in the measured part.
    pub fn measures(&self, ns: u64) -> bool {
        (self.warm_end..self.end).contains(&ns)
    }

    /// Whether the load phase is over at `ns`.
    pub fn is_over(&self, ns: u64) -> bool {
        ns >= self.end
    }

    /// Length of the measured part in seconds.
    pub fn measured_secs(&self) -> f64 {
        (self.end - self.warm_end) as f64 / 1e9
    }
}
