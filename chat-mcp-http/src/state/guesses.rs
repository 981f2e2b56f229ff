//! The budget of wrong resume tokens per client address (`--max-bad-tokens` per
//! `--bad-token-window`).
//!
//! Resume tokens are 128-bit random, so guessing one is hopeless anyway; this is defence
//! in depth, and it keeps a guessing loop from costing the server anything. Each address
//! has a token bucket that holds `max` wrong tokens and refills at `max` per window. A
//! wrong token spends one. While the bucket is empty, every call from that address that
//! presents a resume token is refused before the token is checked (a right token too:
//! otherwise a guesser would still learn which guess was right).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Buckets kept before full (idle) ones are dropped; a full bucket is the same as none.
const PRUNE_ABOVE: usize = 4096;

/// Milli-tokens per token: refills are computed in whole milli-tokens.
const MILLI: u64 = 1000;

#[derive(Clone, Copy)]
struct Bucket {
    /// Milli-tokens left.
    level: u64,
    at: Instant,
}

/// Wrong resume tokens per client address.
pub struct Guesses {
    capacity: u64,
    window: Duration,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Guesses {
    /// A budget of `max` wrong tokens per `window` for each address.
    pub fn new(max: u32, window: Duration) -> Self {
        Guesses {
            capacity: u64::from(max.max(1)) * MILLI,
            window: window.max(Duration::from_millis(1)),
            buckets: Mutex::default(),
        }
    }

    /// `bucket` refilled up to `now`.
    fn refill(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.at).as_micros();
        let gained = elapsed.saturating_mul(u128::from(self.capacity)) / self.window.as_micros().max(1);
        let level = u128::from(bucket.level).saturating_add(gained).min(u128::from(self.capacity));
        Bucket { level: u64::try_from(level).unwrap_or(self.capacity), at: now }
    }

    /// How long until `address` may present a resume token again; `None` if it may now.
    /// Unknown addresses are not limited.
    pub fn refused(&self, address: Option<IpAddr>) -> Option<Duration> {
        let address = address?;
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = self.refill(*buckets.get(&address)?, now);
        if bucket.level >= MILLI {
            return None;
        }
        let missing = u128::from(MILLI - bucket.level);
        let micros = missing.saturating_mul(self.window.as_micros()) / u128::from(self.capacity);
        Some(Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX)).max(Duration::from_millis(1)))
    }

    /// `address` presented a wrong resume token.
    pub fn failed(&self, address: Option<IpAddr>) {
        let Some(address) = address else { return };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= PRUNE_ABOVE {
            buckets.retain(|_, b| self.refill(*b, now).level < self.capacity);
        }
        let full = Bucket { level: self.capacity, at: now };
        let bucket = self.refill(buckets.get(&address).copied().unwrap_or(full), now);
        buckets.insert(address, Bucket { level: bucket.level.saturating_sub(MILLI), at: now });
    }

    /// The budget, for error messages: wrong tokens per window.
    pub fn limit(&self) -> (u64, Duration) {
        (self.capacity / MILLI, self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refuses_until_it_refills() {
        let guesses = Guesses::new(2, Duration::from_millis(200));
        let eve = Some(IpAddr::from([10, 0, 0, 1]));
        let ann = Some(IpAddr::from([10, 0, 0, 2]));
        assert_eq!(guesses.refused(eve), None);
        guesses.failed(eve);
        assert_eq!(guesses.refused(eve), None);
        guesses.failed(eve);
        let wait = guesses.refused(eve).expect("spent");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(guesses.refused(ann), None, "other addresses are not affected");
        assert_eq!(guesses.refused(None), None);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(guesses.refused(eve), None, "one token back after a window / 2");
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let guesses = Guesses::new(1, Duration::from_millis(1));
        for n in 0..PRUNE_ABOVE as u32 + 10 {
            guesses.failed(Some(IpAddr::from(n.to_be_bytes())));
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let kept = guesses.buckets.lock().expect("lock").len();
        assert!(kept <= PRUNE_ABOVE, "{kept}");
    }
}
