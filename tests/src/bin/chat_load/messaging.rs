//! The message scenarios (`relay`, `relay --rate`, `tools-only`, `dm`): set up pairs,
//! run the load closed or open loop, drain what is in flight, and check every message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::cli::{MessagingArgs, RunArgs};
use crate::clock::{self, Window};
use crate::error::Result;
use crate::events::Delivery;
use crate::fleet::Fleet;
use crate::open_loop;
use crate::pairing::{self, Pair};
use crate::receiver::{Ack, Received, Receiver, Reply};
use crate::report::Report;
use crate::sender::Sender;
use crate::stats::{Counters, Latency};

/// How pairs find each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meeting {
    /// Through `enter_queue`; room messages.
    Roulette,
    /// Through `checkin_client`; direct messages.
    Checkin,
}

/// One message scenario.
#[derive(Clone, Debug)]
pub struct Plan {
    /// How pairs meet.
    pub meeting: Meeting,
    /// How receivers hear messages.
    pub delivery: Delivery,
    /// The scenario's options.
    pub args: MessagingArgs,
    /// Default for `--ack-every`.
    pub default_ack_every: u64,
}

impl Plan {
    /// The settings in words, for the report header.
    pub fn describe(&self, run: &RunArgs) -> String {
        let mode = match self.args.rate {
            Some(rate) => format!("open loop at {rate} msgs/s"),
            None => "closed loop (ping-pong)".to_owned(),
        };
        let delivery = match self.delivery {
            Delivery::Stream => "notifications on the GET stream",
            Delivery::Poll => "wait_for_events polling",
        };
        format!(
            "{} pairs, {mode}, {}-byte messages, {delivery}, ack every {}, {} measured after {} warm-up",
            self.args.pairs,
            self.args.message_bytes,
            self.ack_every(),
            run.duration,
            run.warmup
        )
    }

    fn ack_every(&self) -> u64 {
        self.args.ack_every.unwrap_or(self.default_ack_every)
    }
}

/// How often the drain checks whether everything has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// The longest the drain waits, however steadily messages still arrive.
const DRAIN_CAP: Duration = Duration::from_secs(120);
/// How long receivers may take to hand in their results after being told to stop.
const JOIN_LIMIT: Duration = Duration::from_secs(10);

/// Runs `plan` against the fleet's nodes.
pub async fn run(fleet: &Fleet, plan: &Plan, run: &RunArgs) -> Result<Report> {
    let args = &plan.args;
    let pairs = match plan.meeting {
        Meeting::Roulette => {
            pairing::roulette(fleet, args.pairs, plan.delivery, run.setup_concurrency).await?
        }
        Meeting::Checkin => {
            pairing::checkin(fleet, args.pairs, plan.delivery, run.setup_concurrency, &pairing::run_tag())
                .await?
        }
    };
    let sessions: Vec<_> = pairs.iter().flat_map(|p| [p.a.session.clone(), p.b.session.clone()]).collect();
    let counters = Arc::new(Counters::default());
    let running = Arc::new(AtomicBool::new(true));
    let (stop_tx, stop_rx) = watch::channel(false);
    let window = Window::starting_now(run.warmup.0, run.duration.0);

    let closed_loop = args.rate.is_none();
    let mut senders = Vec::with_capacity(pairs.len() * 2);
    let mut receivers = Vec::with_capacity(pairs.len() * 2);
    for (p, Pair { a, b }) in pairs.into_iter().enumerate() {
        let (stream_a, stream_b) = (stream_id(p, 0), stream_id(p, 1));
        let sender_a =
            Sender::new(a.session.clone(), a.to.clone(), stream_a, args.message_bytes, counters.clone());
        let sender_b =
            Sender::new(b.session.clone(), b.to.clone(), stream_b, args.message_bytes, counters.clone());
        // In the closed loop `a` opens with message 1 and each side answers what it gets.
        for (member, own, partner_stream, first) in [(a, &sender_a, stream_b, 1), (b, &sender_b, stream_a, 0)]
        {
            let receiver = Receiver {
                source: member.source,
                from: member.from,
                stream: partner_stream,
                reply: closed_loop.then(|| Reply {
                    sender: own.clone(),
                    last_sent: first,
                    running: running.clone(),
                }),
                ack: Some(Ack { session: member.session, every: plan.ack_every() }).filter(|a| a.every > 0),
                window,
                counters: counters.clone(),
            };
            receivers.push(tokio::spawn(receiver.run(stop_rx.clone())));
        }
        senders.push(sender_a);
        senders.push(sender_b);
    }

    let dispatcher = match args.rate {
        None => {
            for sender in senders.iter().step_by(2) {
                let (sender, running) = (sender.clone(), running.clone());
                tokio::spawn(async move { sender.send_until_accepted(1, clock::now_ns(), &running).await });
            }
            None
        }
        Some(rate) => Some(tokio::spawn(open_loop::dispatch(senders, rate, window, args.max_in_flight))),
    };

    clock::sleep_until(window.warm_end).await;
    let meter = fleet.meter();
    clock::sleep_until(window.end).await;
    let cpu = meter.stop();
    running.store(false, Ordering::Relaxed);
    let dispatched = match dispatcher {
        Some(handle) => handle.await.ok(),
        None => None,
    };
    drain(&counters, run.drain.0).await;
    let rss = fleet.rss_each();
    let _ = stop_tx.send(true);

    let (all, ended_early) = gather(receivers).await;
    pairing::close_all(sessions, run.setup_concurrency, Duration::from_secs(10)).await;

    let accepted = Counters::get(&counters.accepted);
    let messages = all.measured;
    let mut errors = counters.samples();
    if all.foreign > 0 {
        errors.push(format!(
            "{} messages without this generator's payload (another client on the server?)",
            all.foreign
        ));
    }
    let mut report = Report {
        measured_s: window.measured_secs(),
        pairs: Some(args.pairs),
        offered_per_s: args.rate,
        messages: Some(messages),
        msgs_per_s: Some(messages as f64 / window.measured_secs()),
        latency_ms: all.latency.summary(),
        send_lag_ms: dispatched.map(|d| d.lag).as_ref().and_then(Latency::summary),
        accepted: Some(accepted),
        received: Some(all.tracker.unique),
        lost: Some(accepted.saturating_sub(all.tracker.unique)),
        duplicated: Some(all.tracker.duplicates),
        reordered: Some(all.tracker.reordered),
        misrouted: Some(all.misrouted),
        streams_ended_early: Some(ended_early),
        rejected: Counters::get(&counters.rejected),
        failed: Counters::get(&counters.failed),
        errors,
        ..Report::default()
    };
    cpu.fill(fleet, &mut report, messages, &rss);
    Ok(report)
}

/// Collects every receiver's findings; a receiver that does not hand them in within
/// [`JOIN_LIMIT`] counts as a stream that ended early.
async fn gather(receivers: Vec<tokio::task::JoinHandle<Received>>) -> (Received, u64) {
    let mut all = Received::default();
    let mut ended_early = 0;
    for handle in receivers {
        match tokio::time::timeout(JOIN_LIMIT, handle).await {
            Ok(Ok(seen)) => {
                all.latency.merge(&seen.latency);
                all.measured += seen.measured;
                all.misrouted += seen.misrouted;
                all.foreign += seen.foreign;
                all.tracker.duplicates += seen.tracker.duplicates;
                all.tracker.reordered += seen.tracker.reordered;
                all.tracker.unique += seen.tracker.unique;
                ended_early += u64::from(seen.ended_early);
            }
            _ => ended_early += 1,
        }
    }
    (all, ended_early)
}

/// The stream id of side `side` (0 or 1) of pair `pair`.
fn stream_id(pair: usize, side: usize) -> u32 {
    u32::try_from(pair * 2 + side).unwrap_or(u32::MAX)
}

/// Waits until no send is in flight and everything accepted has arrived, giving up once
/// nothing has arrived for `quiet` (or after [`DRAIN_CAP`]). An overloaded server may
/// still be delivering its backlog seconds after the load stops: that is latency, not
/// loss, so the wait goes on for as long as messages keep coming.
async fn drain(counters: &Counters, quiet: Duration) {
    let started = tokio::time::Instant::now();
    let mut last_progress = started;
    let mut last_received = counters.received.load(Ordering::SeqCst);
    while started.elapsed() < DRAIN_CAP && last_progress.elapsed() < quiet {
        let in_flight = counters.in_flight.load(Ordering::SeqCst);
        let accepted = counters.accepted.load(Ordering::SeqCst);
        let received = counters.received.load(Ordering::SeqCst);
        if in_flight == 0 && received >= accepted {
            return;
        }
        if received != last_received {
            last_received = received;
            last_progress = tokio::time::Instant::now();
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}
