//! How late the machine wakes a sleeping thread: the floor under any latency this
//! generator can measure. On a shared or virtualised host, a thread asked to sleep
//! 500 µs sometimes wakes milliseconds late (other tenants, steal time); every report
//! shows this figure so that tail latencies can be read against it.

use std::time::{Duration, Instant};

use crate::stats::{Latency, Percentiles};

/// Sleeps this long per sample.
const NAP: Duration = Duration::from_micros(500);
/// Samples per probe (about 0.3 s in all).
const SAMPLES: usize = 500;

/// Measures sleep overshoot on a plain OS thread (not a runtime worker).
pub async fn probe() -> Option<Percentiles> {
    let measure = || {
        let mut late = Latency::default();
        for _ in 0..SAMPLES {
            let started = Instant::now();
            std::thread::sleep(NAP);
            let overshoot = started.elapsed().saturating_sub(NAP);
            late.record(u64::try_from(overshoot.as_nanos()).unwrap_or(u64::MAX));
        }
        late.summary()
    };
    tokio::task::spawn_blocking(measure).await.ok().flatten()
}
