//! What a session is told, and the two ways of hearing it: notifications on the GET
//! stream, or `wait_for_events` calls in a loop (for clients that ignore notifications).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::wire::{Session, SseEvents};

/// An event envelope as the server sends it, in a notification's params or in
/// `wait_for_events`' `events`: `{"seq": 3, "type": "message.received", ...}`. Only the
/// fields the generator checks are read; deserializing into this instead of a generic
/// JSON value keeps the receivers cheap.
#[derive(Debug, Default, Deserialize)]
pub struct Event {
    /// Per-participant event sequence number (the acknowledgement cursor).
    #[serde(default)]
    pub seq: u64,
    /// `chatroom.found`, `message.received`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The room, for room events.
    #[serde(default)]
    pub room_id: Option<String>,
    /// The sender, for messages.
    #[serde(default)]
    pub from: Option<String>,
    /// The text, for messages.
    #[serde(default)]
    pub message: Option<String>,
}

impl Event {
    /// A `message.received`.
    pub fn is_message(&self) -> bool {
        self.kind == "message.received"
    }

    /// A `chatroom.found`.
    pub fn is_match(&self) -> bool {
        self.kind == "chatroom.found"
    }
}

/// One JSON-RPC message from the GET stream.
#[derive(Deserialize)]
struct Pushed {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    params: Option<Event>,
}

/// How a session hears about events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Notifications on the GET stream.
    Stream,
    /// `wait_for_events` long polls.
    Poll,
}

/// A session's event source.
pub enum Source {
    /// Reads notifications from the GET stream and answers server pings.
    Stream {
        /// The parsed stream.
        events: SseEvents,
        /// For answering pings.
        session: Session,
    },
    /// Long-polls `wait_for_events`, acknowledging what it has returned.
    Poll {
        /// The session to call.
        session: Session,
        /// The newest event seq returned so far.
        cursor: u64,
        /// Events fetched but not yet handed out.
        buffer: VecDeque<Event>,
    },
}

/// How long one `wait_for_events` call may wait; short, so a stopping run is not held
/// up, but long enough that idle polls cost little.
const POLL_WAIT_SECS: f64 = 2.0;

impl Source {
    /// Opens the source for `session`: the GET stream, or nothing for polling.
    pub async fn open(session: &Session, delivery: Delivery) -> Result<Source> {
        Ok(match delivery {
            Delivery::Stream => {
                Source::Stream { events: session.open_stream().await?, session: session.clone() }
            }
            Delivery::Poll => Source::Poll { session: session.clone(), cursor: 0, buffer: VecDeque::new() },
        })
    }

    /// The next event; `None` when the stream has ended.
    ///
    /// Cancel-safe for the stream (the parser keeps its buffer). For polling, an
    /// interrupted call is simply repeated: events are acknowledged only by the next call's
    /// `after_seq`, so none is lost.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        match self {
            Source::Stream { events, session } => loop {
                let item = match events.next().await? {
                    Ok(item) => item,
                    Err(e) => return Some(Err(Error::new(format!("GET stream: {e}")))),
                };
                let Some(data) = item.data.filter(|d| !d.is_empty()) else { continue };
                let pushed: Pushed = match serde_json::from_str(&data) {
                    Ok(p) => p,
                    Err(e) => return Some(Err(Error::from(e).context("GET stream"))),
                };
                match (pushed.method, pushed.id) {
                    // A server request (the keep-alive ping): answer it without holding
                    // up the stream.
                    (Some(_), Some(id)) => {
                        let session = session.clone();
                        tokio::spawn(async move {
                            let _ = session.answer(id).await;
                        });
                    }
                    (Some(method), None) => {
                        let mut event = pushed.params.unwrap_or_default();
                        if event.kind.is_empty() {
                            event.kind = method;
                        }
                        return Some(Ok(event));
                    }
                    _ => {}
                }
            },
            Source::Poll { session, cursor, buffer } => loop {
                if let Some(event) = buffer.pop_front() {
                    return Some(Ok(event));
                }
                match wait_for_events(session, *cursor, POLL_WAIT_SECS, None).await {
                    Ok(events) => {
                        if let Some(last) = events.iter().map(|e| e.seq).max() {
                            *cursor = (*cursor).max(last);
                        }
                        buffer.extend(events);
                    }
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }

    /// Waits up to `limit` for the first event that `wanted` accepts, dropping others.
    pub async fn wait_for(&mut self, limit: Duration, wanted: impl Fn(&Event) -> bool) -> Result<Event> {
        let found = tokio::time::timeout(limit, async {
            while let Some(event) = self.next().await {
                let event = event?;
                if wanted(&event) {
                    return Ok(event);
                }
            }
            Err(Error::new("the event stream ended"))
        });
        found.await.map_err(|_| Error::new(format!("no such event within {limit:?}")))?
    }
}

/// Calls `wait_for_events` (acknowledging through `after_seq` when it is not 0) and
/// returns the events.
pub async fn wait_for_events(
    session: &Session,
    after_seq: u64,
    wait_secs: f64,
    limit: Option<u64>,
) -> Result<Vec<Event>> {
    let mut arguments = json!({"timeout": wait_secs});
    if after_seq > 0 {
        arguments["after_seq"] = json!(after_seq);
    }
    if let Some(limit) = limit {
        arguments["limit"] = json!(limit);
    }
    let allowed = Duration::from_secs_f64(wait_secs) + crate::wire::REQUEST_TIMEOUT;
    let (is_error, data) = session.call_tool_as::<Fetched>("wait_for_events", arguments, allowed).await?;
    let data = data.unwrap_or_default();
    if is_error {
        let refusal = crate::wire::Refusal { error: data.error, message: data.message };
        return Err(Error::new(format!("wait_for_events refused: {}", refusal.text())));
    }
    Ok(data.events)
}

/// `wait_for_events`' `structuredContent`: the events, or a refusal. (No
/// `#[serde(flatten)]`: it would buffer every field before decoding.)
#[derive(Default, Deserialize)]
struct Fetched {
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Keeps a session's stream read (answering pings) until `stop` turns true; counts it in
/// `ended_early` if the stream ends first.
pub async fn hold_open(mut source: Source, mut stop: watch::Receiver<bool>, ended_early: Arc<AtomicU64>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            next = source.next() => if !matches!(next, Some(Ok(_))) {
                if !*stop.borrow() {
                    ended_early.fetch_add(1, Ordering::Relaxed);
                }
                return;
            },
        }
    }
}
