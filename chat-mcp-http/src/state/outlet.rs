//! One session's server-to-client message stream: what is written to its GET (SSE)
//! stream, with event ids and a short replay buffer for reconnects.
//!
//! Messages are serialized once, when they are queued, and the GET stream only frames
//! them. Each gets the next event id; the last [`REPLAY_FRAMES`] are kept so a client that
//! reconnects with `Last-Event-ID` gets what it missed. The queue to the open stream is
//! bounded (`--event-buffer`): a client that stops reading loses pushes beyond it, never
//! blocks anyone else, and still finds every event in the core (`wait_for_events`; the
//! `seq` gap tells it to fetch). Without an open stream, messages only go to the replay
//! buffer.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;

/// How many recent messages each session keeps for `Last-Event-ID` replay.
pub const REPLAY_FRAMES: usize = 32;

/// A serialized JSON-RPC message and its SSE event id (`None`: not replayable, e.g. a
/// keep-alive ping).
#[derive(Clone, Debug)]
pub struct Frame {
    /// The event id, if the message is kept for replay.
    pub id: Option<u64>,
    /// The JSON-RPC message.
    pub json: std::sync::Arc<str>,
}

/// Why a message did not reach the open stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Missed {
    /// No GET stream is open (the message is kept for replay).
    NoStream,
    /// The client is `--event-buffer` messages behind.
    Full,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    replay: VecDeque<(u64, std::sync::Arc<str>)>,
    stream: Option<mpsc::Sender<Frame>>,
    closed: bool,
}

/// The server-to-client side of one session.
pub struct Outlet {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl Outlet {
    /// An outlet whose open stream may fall `capacity` messages behind.
    pub fn new(capacity: usize) -> Self {
        Outlet { inner: Mutex::default(), capacity: capacity.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a replayable message.
    pub fn send(&self, json: std::sync::Arc<str>) -> Result<(), Missed> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(Missed::NoStream);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        if inner.replay.len() == REPLAY_FRAMES {
            inner.replay.pop_front();
        }
        inner.replay.push_back((id, json.clone()));
        Self::offer(&mut inner, Frame { id: Some(id), json })
    }

    /// Queues a message that is not replayed (sent only if a stream is open now).
    pub fn send_once(&self, json: std::sync::Arc<str>) -> Result<(), Missed> {
        Self::offer(&mut self.lock(), Frame { id: None, json })
    }

    fn offer(inner: &mut Inner, frame: Frame) -> Result<(), Missed> {
        let Some(stream) = &inner.stream else { return Err(Missed::NoStream) };
        match stream.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Missed::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inner.stream = None;
                Err(Missed::NoStream)
            }
        }
    }

    /// Opens a new stream, replacing (and so ending) any previous one. With `after`
    /// (a `Last-Event-ID`), the kept messages newer than it are queued first. `None` if
    /// the session has ended.
    pub fn open(&self, after: Option<u64>) -> Option<mpsc::Receiver<Frame>> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.capacity.max(REPLAY_FRAMES));
        if let Some(after) = after {
            for (id, json) in inner.replay.iter().filter(|(id, _)| *id > after) {
                // Cannot fail: the channel is new and at least as large as the buffer.
                let _ = tx.try_send(Frame { id: Some(*id), json: json.clone() });
            }
        }
        inner.stream = Some(tx);
        Some(rx)
    }

    /// Whether a stream is open and reading.
    pub fn has_stream(&self) -> bool {
        self.lock().stream.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Whether the open stream (if any) has taken every queued message.
    pub fn is_drained(&self) -> bool {
        self.lock().stream.as_ref().is_none_or(|s| s.is_closed() || s.capacity() == s.max_capacity())
    }

    /// Ends the open stream and refuses new ones (the session is over).
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.stream = None;
        inner.replay.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> std::sync::Arc<str> {
        std::sync::Arc::from(s)
    }

    #[test]
    fn replays_what_a_reconnecting_stream_missed() {
        let outlet = Outlet::new(8);
        assert_eq!(outlet.send(json("a")), Err(Missed::NoStream));
        let mut first = outlet.open(None).expect("open");
        outlet.send(json("b")).expect("sent");
        assert_eq!(first.try_recv().expect("b").id, Some(2));
        drop(first);
        assert_eq!(outlet.send(json("c")), Err(Missed::NoStream));
        let mut second = outlet.open(Some(2)).expect("reopen");
        let replayed = second.try_recv().expect("c");
        assert_eq!((replayed.id, &*replayed.json), (Some(3), "c"));
        assert!(second.try_recv().is_err());
    }

    #[test]
    fn a_full_stream_misses_and_a_closed_outlet_refuses() {
        let outlet = Outlet::new(1);
        let _stream = outlet.open(None).expect("open");
        for _ in 0..REPLAY_FRAMES {
            outlet.send(json("x")).expect("room in the channel");
        }
        assert_eq!(outlet.send(json("y")), Err(Missed::Full));
        assert!(!outlet.is_drained());
        outlet.close();
        assert!(outlet.open(None).is_none());
        assert_eq!(outlet.send_once(json("z")), Err(Missed::NoStream));
    }
}
