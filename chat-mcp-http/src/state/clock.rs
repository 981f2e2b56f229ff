//! The adapter's clock: the core never reads one, so every call gets "now" from here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_core::Time;

/// Wall-clock time in milliseconds since the Unix epoch. The core keeps time monotonic
/// itself (it never lets time run backwards), so a clock step is harmless.
pub fn now() -> Time {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Time::from_millis(ms)
}

/// How long from `now` until `deadline` (zero if it has passed).
pub fn until(deadline: Time, now: Time) -> Duration {
    deadline.since(now)
}
