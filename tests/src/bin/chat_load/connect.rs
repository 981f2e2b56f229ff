//! `connect`: how fast sessions can be opened. One opening is everything a chat client
//! does before it can be matched: `initialize`, `notifications/initialized`, the GET
//! stream (response headers received) and `enter_queue`.
//!
//! By default every session is closed (DELETE) right after it opened and its stream read
//! to the end, so the server sees steady churn and connections return to the pool
//! instead of piling up in TIME_WAIT; `--hold` keeps them all instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;

use crate::cli::{ConnectArgs, RunArgs};
use crate::clock::{self, Window};
use crate::error::{Error, Result};
use crate::events::{self, Source};
use crate::fleet::Fleet;
use crate::pairing;
use crate::report::Report;
use crate::stats::{Counters, Latency};
use crate::wire::{Endpoint, Session, SseEvents};

/// How long a closed session's stream may take to end after DELETE.
const STREAM_END_LIMIT: Duration = Duration::from_secs(2);
/// Pause after a failed opening, so a refusing server is not hammered in a tight loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(20);

/// What one worker did.
#[derive(Default)]
struct Work {
    latency: Latency,
    measured: u64,
    held: Vec<Session>,
}

/// Runs `connect` against `endpoint`.
pub async fn run(fleet: &Fleet, args: &ConnectArgs, run: &RunArgs) -> Result<Report> {
    let counters = Arc::new(Counters::default());
    let ended_early = Arc::new(AtomicU64::new(0));
    let lingering = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let window = Window::starting_now(run.warmup.0, run.duration.0);
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|w| {
            let worker = Worker {
                endpoint: fleet.endpoint(w).clone(),
                index: w,
                window,
                hold: args.hold,
                counters: counters.clone(),
                ended_early: ended_early.clone(),
                lingering: lingering.clone(),
                stop: stop_rx.clone(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    clock::sleep_until(window.warm_end).await;
    let meter = fleet.meter();
    clock::sleep_until(window.end).await;
    let cpu = meter.stop();
    let mut all = Work::default();
    for handle in workers {
        if let Ok(work) = handle.await {
            all.latency.merge(&work.latency);
            all.measured += work.measured;
            all.held.extend(work.held);
        }
    }
    let rss = fleet.rss_each();
    let _ = stop_tx.send(true);
    pairing::close_all(all.held, run.setup_concurrency, Duration::from_secs(30)).await;
    let mut errors = counters.samples();
    let lingering = lingering.load(Ordering::Relaxed);
    if lingering > 0 {
        errors.push(format!("{lingering} GET streams did not end within {STREAM_END_LIMIT:?} of DELETE"));
    }
    let mut report = Report {
        measured_s: window.measured_secs(),
        sessions: Some(all.measured),
        sessions_per_s: Some(all.measured as f64 / window.measured_secs()),
        open_ms: all.latency.summary(),
        streams_ended_early: args.hold.then(|| ended_early.load(Ordering::Relaxed)),
        rejected: Counters::get(&counters.rejected),
        failed: Counters::get(&counters.failed),
        errors,
        ..Report::default()
    };
    cpu.fill(fleet, &mut report, all.measured, &rss);
    Ok(report)
}

/// One connection-opening loop.
struct Worker {
    endpoint: Endpoint,
    index: usize,
    window: Window,
    hold: bool,
    counters: Arc<Counters>,
    ended_early: Arc<AtomicU64>,
    lingering: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
}

impl Worker {
    async fn run(self) -> Work {
        let mut work = Work::default();
        let mut n = 0u64;
        while !self.window.is_over(clock::now_ns()) {
            n += 1;
            let started = clock::now_ns();
            match self.open(n).await {
                Ok((session, stream)) => {
                    let done = clock::now_ns();
                    if self.window.measures(done) {
                        work.latency.record(done - started);
                        work.measured += 1;
                    }
                    if self.hold {
                        self.keep(session.clone(), stream);
                        work.held.push(session);
                    } else {
                        self.close(session, stream).await;
                    }
                }
                Err(error) => {
                    if error.to_string().contains("refused") {
                        self.counters.reject(error.to_string());
                    } else {
                        self.counters.fail(error.to_string());
                    }
                    tokio::time::sleep(FAILURE_PAUSE).await;
                }
            }
        }
        work
    }

    /// Opens one session the way a chat client does.
    async fn open(&self, n: u64) -> Result<(Session, SseEvents)> {
        let session = self.endpoint.open().await?;
        let stream = session.open_stream().await?;
        let name = format!("conn-{}-{n}", self.index);
        let result = session.call_tool("enter_queue", json!({"display_name": name})).await?;
        if result.is_error {
            return Err(Error::new(format!("enter_queue refused: {}", result.error_text())));
        }
        Ok((session, stream))
    }

    /// Ends the session and reads its stream to the end, so the connection is reused.
    async fn close(&self, session: Session, mut stream: SseEvents) {
        if let Err(error) = session.delete().await {
            self.counters.fail(error.to_string());
        }
        let ended =
            tokio::time::timeout(STREAM_END_LIMIT, async { while let Some(Ok(_)) = stream.next().await {} })
                .await;
        if ended.is_err() {
            self.lingering.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `--hold`: reads the stream (answering pings) until the run stops.
    fn keep(&self, session: Session, stream: SseEvents) {
        let source = Source::Stream { events: stream, session };
        tokio::spawn(events::hold_open(source, self.stop.clone(), self.ended_early.clone()));
    }
}
