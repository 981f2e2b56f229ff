//! The sending half of a member: one `send_message` call per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::pairing::Address;
use crate::payload::Payload;
use crate::stats::Counters;
use crate::wire::{Refusal, Session};

/// Pause before a closed-loop send that failed is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The arguments of `send_message`.
#[derive(Serialize)]
struct SendArgs<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    room_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_id: Option<&'a str>,
    message: &'a str,
}

/// Sends one member's stream of messages.
#[derive(Clone)]
pub struct Sender {
    session: Session,
    to: Address,
    stream: u32,
    size: usize,
    counters: Arc<Counters>,
}

impl Sender {
    /// A sender for stream `stream` from `session` to `to`, with `size`-byte bodies.
    pub fn new(session: Session, to: Address, stream: u32, size: usize, counters: Arc<Counters>) -> Sender {
        Sender { session, to, stream, size, counters }
    }

    /// Sends message `seq` stamped `stamp_ns`; `true` if the server accepted it.
    ///
    /// `accepted` is counted before `in_flight` drops, so whoever sees no sends in flight
    /// also sees every acceptance (the drain check relies on it).
    pub async fn send(&self, seq: u64, stamp_ns: u64) -> bool {
        let message = Payload { stream: self.stream, seq, sent_ns: stamp_ns }.encode(self.size);
        let arguments = match &self.to {
            Address::Room(room) => SendArgs { room_id: Some(room), recipient_id: None, message: &message },
            Address::Direct(client) => {
                SendArgs { room_id: None, recipient_id: Some(client), message: &message }
            }
        };
        self.counters.in_flight.fetch_add(1, Ordering::SeqCst);
        let outcome = self
            .session
            .call_tool_as::<Refusal>("send_message", arguments, crate::wire::REQUEST_TIMEOUT)
            .await;
        let accepted = match outcome {
            Ok((false, _)) => {
                self.counters.accepted.fetch_add(1, Ordering::SeqCst);
                true
            }
            Ok((true, refusal)) => {
                self.counters.reject(format!("send_message refused: {}", refusal.unwrap_or_default().text()));
                false
            }
            Err(error) => {
                self.counters.fail(format!("send_message: {error}"));
                false
            }
        };
        self.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
        accepted
    }

    /// Closed loop: sends `seq` until it is accepted or the load stops. The stamp stays
    /// that of the first attempt, so retries count against latency.
    pub async fn send_until_accepted(&self, seq: u64, stamp_ns: u64, running: &AtomicBool) {
        while !self.send(seq, stamp_ns).await && running.load(Ordering::Relaxed) {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}
