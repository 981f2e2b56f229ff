//! The wall clock, kept out of the app so the app stays pure.

use chat_core::Time;

/// Now, as the core's [`Time`].
pub fn now() -> Time {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Time::from_millis(ms)
}

/// The local time zone's current offset from UTC, in seconds.
pub fn local_offset_secs() -> i32 {
    chrono::Local::now().offset().local_minus_utc()
}
