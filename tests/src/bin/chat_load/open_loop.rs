//! The open-loop dispatcher: message `i` is due at `start + i / rate`, whatever happened
//! to earlier ones, and its latency is measured from that due time. A server that stalls
//! therefore shows the queueing its users would see instead of slowing the generator
//! down (no coordinated omission).
//!
//! The dispatcher runs on a blocking-pool thread and sleeps with the OS timer (tens of
//! microseconds of slack) rather than tokio's (1 ms ticks): with latencies around a
//! millisecond, a tick of lateness on every send would be mostly generator error.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::clock::{self, Window};
use crate::sender::Sender;
use crate::stats::Latency;

/// What the dispatcher did.
pub struct Dispatched {
    /// How late each send actually started after its due time (measured window only):
    /// the generator's own contribution to the latency.
    pub lag: Latency,
}

/// Spreads `rate` messages per second round-robin over `senders` until the load stops.
pub async fn dispatch(senders: Vec<Sender>, rate: f64, window: Window, max_in_flight: usize) -> Dispatched {
    let handle = Handle::current();
    let run = move || {
        let interval_ns = 1e9 / rate.max(0.001);
        let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
        let mut seqs = vec![0u64; senders.len()];
        let mut lag = Latency::default();
        let mut offered = 0u64;
        if senders.is_empty() {
            return Dispatched { lag };
        }
        loop {
            let due = window.start + (offered as f64 * interval_ns) as u64;
            if window.is_over(due) {
                break;
            }
            let now = clock::now_ns();
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
            }
            let permit = loop {
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => break permit,
                    Err(_) => std::thread::sleep(Duration::from_micros(50)),
                }
            };
            if window.measures(due) {
                lag.record(clock::now_ns().saturating_sub(due));
            }
            let k = usize::try_from(offered % senders.len() as u64).unwrap_or(0);
            seqs[k] += 1;
            let (sender, seq) = (senders[k].clone(), seqs[k]);
            handle.spawn(async move {
                sender.send(seq, due).await;
                drop(permit);
            });
            offered += 1;
        }
        Dispatched { lag }
    };
    match tokio::task::spawn_blocking(run).await {
        Ok(dispatched) => dispatched,
        Err(_) => Dispatched { lag: Latency::default() },
    }
}
