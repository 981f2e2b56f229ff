//! The receiving half of a member: reads its events, checks every message (origin,
//! stream, sequence number), records latency and, in the closed loop, answers each
//! message with the next one of its own stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::clock::{self, Window};
use crate::events::{self, Event, Source};
use crate::pairing::Address;
use crate::payload::Payload;
use crate::sender::Sender;
use crate::stats::{Counters, Latency};
use crate::tracker::{Arrival, SeqTracker};
use crate::wire::Session;

/// Closed loop: what a member answers with.
pub struct Reply {
    /// Its own sender.
    pub sender: Sender,
    /// The last sequence number it sent (the next answer is one more).
    pub last_sent: u64,
    /// Cleared when the load stops: no new messages after it.
    pub running: Arc<AtomicBool>,
}

/// Periodic acknowledgement of events, so the server can drop them.
pub struct Ack {
    /// The session to acknowledge in.
    pub session: Session,
    /// Every this many received messages.
    pub every: u64,
}

/// What one member's receiver expects.
pub struct Receiver {
    /// Where events come from.
    pub source: Source,
    /// What incoming messages must show.
    pub from: Address,
    /// The stream its partner sends.
    pub stream: u32,
    /// Closed loop: the answer to each message.
    pub reply: Option<Reply>,
    /// Optional acknowledgements.
    pub ack: Option<Ack>,
    /// The run's phases.
    pub window: Window,
    /// Shared counters.
    pub counters: Arc<Counters>,
}

/// What one receiver saw.
#[derive(Default)]
pub struct Received {
    /// Latency of messages sent in the measured window.
    pub latency: Latency,
    /// Messages sent in the measured window and received.
    pub measured: u64,
    /// Per-stream sequence bookkeeping.
    pub tracker: SeqTracker,
    /// Messages with the wrong room, sender or stream.
    pub misrouted: u64,
    /// Messages without this generator's payload.
    pub foreign: u64,
    /// The stream or poll loop ended before the run did.
    pub ended_early: bool,
}

impl Receiver {
    /// Runs until `stop` turns true (or the source ends) and returns what it saw.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Received {
        let mut seen = Received::default();
        let mut newest_event = 0;
        let mut since_ack = 0;
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.changed() => break,
                next = self.source.next() => next,
            };
            let event = match next {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    if !*stop.borrow() {
                        self.counters.fail(error.to_string());
                        seen.ended_early = true;
                    }
                    break;
                }
                None => {
                    seen.ended_early = !*stop.borrow();
                    break;
                }
            };
            newest_event = newest_event.max(event.seq);
            if !event.is_message() {
                continue;
            }
            if !self.handle(&event, &mut seen) {
                continue;
            }
            if let Some(ack) = &self.ack {
                since_ack += 1;
                if ack.every > 0 && since_ack >= ack.every && newest_event > 0 {
                    since_ack = 0;
                    let (session, counters) = (ack.session.clone(), self.counters.clone());
                    tokio::spawn(async move {
                        if let Err(e) = events::wait_for_events(&session, newest_event, 0.0, Some(1)).await {
                            counters.fail(format!("acknowledging events: {e}"));
                        }
                    });
                }
            }
        }
        seen
    }

    /// Checks one `message.received`; `true` if it was new and valid.
    fn handle(&mut self, event: &Event, seen: &mut Received) -> bool {
        let now = clock::now_ns();
        let right_origin = match &self.from {
            Address::Room(room) => event.room_id.as_deref() == Some(&**room),
            Address::Direct(client) => event.room_id.is_none() && event.from.as_deref() == Some(&**client),
        };
        let Some(payload) = event.message.as_deref().and_then(Payload::decode) else {
            seen.foreign += 1;
            return false;
        };
        if !right_origin || payload.stream != self.stream {
            seen.misrouted += 1;
            return false;
        }
        if seen.tracker.record(payload.seq) == Arrival::Duplicate {
            return false;
        }
        self.counters.received.fetch_add(1, Ordering::SeqCst);
        if self.window.measures(payload.sent_ns) {
            seen.latency.record(now.saturating_sub(payload.sent_ns));
            seen.measured += 1;
        }
        if let Some(reply) = &mut self.reply
            && reply.running.load(Ordering::Relaxed)
        {
            reply.last_sent += 1;
            let (sender, seq, running) = (reply.sender.clone(), reply.last_sent, reply.running.clone());
            tokio::spawn(async move { sender.send_until_accepted(seq, clock::now_ns(), &running).await });
        }
        true
    }
}
