//! Time as the core sees it: a plain number handed in by the caller.
//!
//! The core never reads a clock. Every call that can change state takes a [`Time`],
//! so replaying the same `(time, command)` sequence reproduces the same output.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch, supplied by the adapter.
///
/// Serialized as an RFC 3339 UTC string with millisecond precision
/// (`2024-01-01T12:00:00.000Z`), the format every payload uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The epoch itself; handy in tests.
    pub const ZERO: Time = Time(0);

    /// A time from milliseconds since the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future instead of overflowing.
    pub fn plus(self, d: Duration) -> Time {
        Time(self.0.saturating_add(duration_ms(d)))
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// RFC 3339 text, e.g. `2024-01-01T12:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        let ms = i64::try_from(self.0).unwrap_or(i64::MAX);
        match DateTime::<Utc>::from_timestamp_millis(ms) {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("{}ms", self.0),
        }
    }

    /// Parses the text [`Time::to_rfc3339`] produces (any RFC 3339 time is accepted).
    pub fn parse_rfc3339(text: &str) -> Option<Time> {
        let dt = DateTime::parse_from_rfc3339(text).ok()?;
        u64::try_from(dt.timestamp_millis()).ok().map(Time)
    }
}

/// Whole milliseconds in `d`, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Time::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339_with_millis() {
        let t = Time::from_millis(1_704_110_400_123);
        assert_eq!(t.to_rfc3339(), "2024-01-01T12:00:00.123Z");
        assert_eq!(Time::parse_rfc3339(&t.to_rfc3339()), Some(t));
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_millis(u64::MAX - 1);
        assert_eq!(t.plus(Duration::from_secs(1)).as_millis(), u64::MAX);
        assert_eq!(Time::ZERO.since(t), Duration::ZERO);
    }
}
