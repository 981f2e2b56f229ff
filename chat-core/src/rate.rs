//! A token bucket: `capacity` messages, refilled evenly over `window`.

use std::time::Duration;

use crate::time::{Time, duration_ms};

/// Token bucket in milli-tokens, so refill is exact integer arithmetic.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RateLimiter {
    milli_tokens: u64,
    updated: Time,
}

impl RateLimiter {
    pub(crate) fn new(now: Time, capacity: u32) -> Self {
        RateLimiter { milli_tokens: u64::from(capacity) * 1000, updated: now }
    }

    /// Takes one token, or returns how many milliseconds until one is available.
    pub(crate) fn try_take(&mut self, now: Time, capacity: u32, window: Duration) -> Result<(), u64> {
        let full = u64::from(capacity) * 1000;
        let window_ms = duration_ms(window).max(1);
        // Refill: `capacity` tokens per `window`, i.e. capacity*1000/window_ms milli-tokens per ms.
        let elapsed = duration_ms(now.since(self.updated));
        let refill = elapsed.saturating_mul(full) / window_ms;
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(full);
        self.updated = now;
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            Ok(())
        } else if full == 0 {
            Err(window_ms)
        } else {
            let missing = 1000 - self.milli_tokens;
            Err((missing * window_ms).div_ceil(full))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_burst_then_refills_evenly() {
        let window = Duration::from_secs(10);
        let mut r = RateLimiter::new(Time::ZERO, 20);
        for _ in 0..20 {
            assert!(r.try_take(Time::ZERO, 20, window).is_ok());
        }
        assert_eq!(r.try_take(Time::ZERO, 20, window), Err(500));
        assert_eq!(r.try_take(Time::from_millis(499), 20, window), Err(1));
        assert!(r.try_take(Time::from_millis(500), 20, window).is_ok());
        assert!(r.try_take(Time::from_millis(60_000), 20, window).is_ok());
    }
}
