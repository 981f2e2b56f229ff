//! Latency histograms and the shared counters every task of a run updates.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Smallest and largest recordable latency (1 µs, 10 min), 3 significant digits.
const LOWEST_NS: u64 = 1_000;
const HIGHEST_NS: u64 = 600_000_000_000;

/// A latency histogram in nanoseconds. Each task keeps its own (no locking on the hot
/// path) and the run merges them at the end.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // Constant, valid bounds: this cannot fail.
        Latency(Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Records one latency, clamped into the histogram's range.
    pub fn record(&mut self, ns: u64) {
        let _ = self.0.record(ns.clamp(LOWEST_NS, HIGHEST_NS));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    /// Percentiles in milliseconds; `None` when empty.
    pub fn summary(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(Percentiles {
            count: self.0.len(),
            mean: self.0.mean() / 1e6,
            p50: ms(self.0.value_at_quantile(0.50)),
            p90: ms(self.0.value_at_quantile(0.90)),
            p99: ms(self.0.value_at_quantile(0.99)),
            p999: ms(self.0.value_at_quantile(0.999)),
            max: ms(self.0.max()),
        })
    }
}

/// A latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// Counters shared by the tasks of one run.
#[derive(Default)]
pub struct Counters {
    /// Sends the server accepted.
    pub accepted: AtomicU64,
    /// Sends being processed right now.
    pub in_flight: AtomicU64,
    /// Distinct messages received.
    pub received: AtomicU64,
    /// Sends refused with `isError` (rate limits, full mailboxes, ...).
    pub rejected: AtomicU64,
    /// Requests that failed at the HTTP or JSON-RPC level.
    pub failed: AtomicU64,
    /// A few distinct error messages, to say what went wrong.
    samples: Mutex<Vec<String>>,
}

/// How many distinct error messages to keep.
const MAX_SAMPLES: usize = 5;

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts a failed request and keeps its message if it is new.
    pub fn fail(&self, message: impl Into<String>) {
        Self::bump(&self.failed);
        self.sample(message.into());
    }

    /// Counts a refused send and keeps its message if it is new.
    pub fn reject(&self, message: impl Into<String>) {
        Self::bump(&self.rejected);
        self.sample(message.into());
    }

    /// Keeps an error message (at most a few distinct ones).
    pub fn sample(&self, message: String) {
        let mut samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.len() < MAX_SAMPLES && !samples.contains(&message) {
            samples.push(message);
        }
    }

    /// The error messages kept.
    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_in_milliseconds() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        for i in 1..=100 {
            a.record(i * 1_000_000);
        }
        b.record(5);
        a.merge(&b);
        let s = a.summary().expect("samples");
        assert_eq!(s.count, 101);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.max - 100.0).abs() < 0.1, "{s:?}");
        assert!(Latency::default().summary().is_none());
    }
}
