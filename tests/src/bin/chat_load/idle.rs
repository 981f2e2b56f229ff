//! `idle`: hold many sessions, each with an open GET stream, and read the target's
//! resident memory (VmRSS) before and after: the cost of one connected, idle client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;

use crate::cli::{IdleArgs, RunArgs};
use crate::clock;
use crate::error::{Error, Result};
use crate::events::{self, Delivery, Source};
use crate::fleet::{self, Fleet};
use crate::pairing;
use crate::procfs;
use crate::report::Report;
use crate::stats::{Counters, Latency};
use crate::wire::{Endpoint, Session};

/// Runs `idle` against the fleet's nodes; memory figures need their pids.
pub async fn run(fleet: &Fleet, args: &IdleArgs, run: &RunArgs) -> Result<Report> {
    let counters = Arc::new(Counters::default());
    let ended_early = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let tag = pairing::run_tag();
    let rss_before_kib = fleet::total_rss(&fleet.rss_each());

    let opened: Vec<(Session, u64)> = futures::stream::iter(0..args.sessions)
        .map(|i| {
            let (counters, ended_early, stop, tag) =
                (counters.clone(), ended_early.clone(), stop_rx.clone(), &tag);
            async move {
                let started = clock::now_ns();
                match open(fleet.endpoint(i), i, args.checkin.then_some(tag)).await {
                    Ok((session, source)) => {
                        let took = clock::now_ns() - started;
                        tokio::spawn(events::hold_open(source, stop, ended_early));
                        Some((session, took))
                    }
                    Err(error) => {
                        counters.fail(error.to_string());
                        None
                    }
                }
            }
        })
        .buffer_unordered(run.setup_concurrency.max(1))
        .filter_map(|o| async move { o })
        .collect()
        .await;
    let mut latency = Latency::default();
    for (_, took) in &opened {
        latency.record(*took);
    }
    let sessions: Vec<Session> = opened.into_iter().map(|(s, _)| s).collect();

    // Hold them: the target's own timers (keep-alive comments, pings) run meanwhile.
    let meter = fleet.meter();
    tokio::time::sleep(run.duration.0).await;
    let cpu = meter.stop();
    let rss = fleet.rss_each();
    let rss_kib = fleet::total_rss(&rss);
    let generator_rss_kib = procfs::rss_kib(procfs::own_pid());
    let early = ended_early.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let count = sessions.len() as u64;
    pairing::close_all(sessions, run.setup_concurrency, Duration::from_secs(60)).await;

    let per_session = match (rss_before_kib, rss_kib) {
        (Some(before), Some(after)) if count > 0 => Some((after as f64 - before as f64) / count as f64),
        _ => None,
    };
    let mut report = Report {
        measured_s: run.duration.0.as_secs_f64(),
        sessions: Some(count),
        open_ms: latency.summary(),
        streams_ended_early: Some(early),
        rss_before_kib,
        rss_per_session_kib: per_session,
        generator_rss_kib,
        rejected: Counters::get(&counters.rejected),
        failed: Counters::get(&counters.failed),
        errors: counters.samples(),
        ..Report::default()
    };
    // Idle reports CPU seconds only (no per-session figure), as before.
    cpu.fill(fleet, &mut report, 0, &rss);
    Ok(report)
}

/// Opens session `i` with its stream, checked in as `<tag>-<i>` when a tag is given.
async fn open(endpoint: &Endpoint, i: usize, checkin: Option<&String>) -> Result<(Session, Source)> {
    let session = endpoint.open().await?;
    let source = Source::open(&session, Delivery::Stream).await?;
    if let Some(tag) = checkin {
        let client_id = format!("{tag}-{i}");
        let result = session.call_tool("checkin_client", json!({"client_id": client_id})).await?;
        if result.is_error {
            return Err(Error::new(format!("checkin_client refused: {}", result.error_text())));
        }
    }
    Ok((session, source))
}
