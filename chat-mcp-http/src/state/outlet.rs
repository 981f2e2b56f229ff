//! One session's server-to-client message stream: what is written to its GET (SSE)
//! stream, with event ids and a short replay buffer for reconnects.
//!
//! Messages are serialized once, when they are queued, and the GET stream only frames
//! them. Each gets the next event id; the last few (`--stream-replay`) are kept so a
//! client that reconnects with `Last-Event-ID` gets what it missed. The queue to the open stream is
//! bounded (`--event-buffer`): a client that stops reading loses pushes beyond it, never
//! blocks anyone else, and still finds every event in the core (`wait_for_events`; the
//! `seq` gap tells it to fetch). Without an open stream, messages only go to the replay
//! buffer.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;

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
    /// The newest replayable message handed to a stream.
    sent_through: u64,
    replay: VecDeque<(u64, std::sync::Arc<str>)>,
    stream: Option<mpsc::Sender<Frame>>,
    closed: bool,
}

/// The server-to-client side of one session.
pub struct Outlet {
    inner: Mutex<Inner>,
    capacity: usize,
    replay: usize,
}

impl Outlet {
    /// An outlet whose open stream may fall `capacity` messages behind and that keeps
    /// the last `replay` for reconnects.
    pub fn new(capacity: usize, replay: usize) -> Self {
        Outlet { inner: Mutex::default(), capacity: capacity.max(1), replay }
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
        if self.replay > 0 {
            if inner.replay.len() >= self.replay {
                inner.replay.pop_front();
            }
            inner.replay.push_back((id, json.clone()));
        }
        Self::offer(&mut inner, Frame { id: Some(id), json })
    }

    /// Queues a message that is not replayed (sent only if a stream is open now).
    pub fn send_once(&self, json: std::sync::Arc<str>) -> Result<(), Missed> {
        Self::offer(&mut self.lock(), Frame { id: None, json })
    }

    fn offer(inner: &mut Inner, frame: Frame) -> Result<(), Missed> {
        let Some(stream) = &inner.stream else { return Err(Missed::NoStream) };
        let id = frame.id;
        match stream.try_send(frame) {
            Ok(()) => {
                if let Some(id) = id {
                    inner.sent_through = id;
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Missed::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inner.stream = None;
                Err(Missed::NoStream)
            }
        }
    }

    /// Opens a new stream, replacing (and so ending) any previous one. The kept messages
    /// newer than `after` (a `Last-Event-ID`) are queued first; without one, those that no
    /// stream has taken yet (sent before the client's first GET, or between streams).
    /// `None` if the session has ended.
    pub fn open(&self, after: Option<u64>) -> Option<mpsc::Receiver<Frame>> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.capacity.max(self.replay).max(1));
        let after = after.unwrap_or(inner.sent_through);
        let mut newest = None;
        for (id, json) in inner.replay.iter().filter(|(id, _)| *id > after) {
            // Cannot fail: the channel is new and at least as large as the buffer.
            let _ = tx.try_send(Frame { id: Some(*id), json: json.clone() });
            newest = Some(*id);
        }
        if let Some(newest) = newest {
            inner.sent_through = newest;
        }
        inner.stream = Some(tx);
        Some(rx)
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
        let outlet = Outlet::new(8, 4);
        // Sent before the first stream: delivered when it opens.
        assert_eq!(outlet.send(json("a")), Err(Missed::NoStream));
        let mut first = outlet.open(None).expect("open");
        assert_eq!(first.try_recv().expect("a").id, Some(1));
        outlet.send(json("b")).expect("sent");
        assert_eq!(first.try_recv().expect("b").id, Some(2));
        drop(first);
        assert_eq!(outlet.send(json("c")), Err(Missed::NoStream));
        // With Last-Event-ID: what came after it.
        let mut second = outlet.open(Some(1)).expect("reopen");
        let ids: Vec<_> = std::iter::from_fn(|| second.try_recv().ok()).map(|f| f.id).collect();
        assert_eq!(ids, [Some(2), Some(3)]);
        // Without: only what no stream has taken.
        drop(second);
        outlet.send(json("d")).expect_err("no stream");
        let mut third = outlet.open(None).expect("reopen");
        let replayed = third.try_recv().expect("d");
        assert_eq!((replayed.id, &*replayed.json), (Some(4), "d"));
        assert!(third.try_recv().is_err());
    }

    #[test]
    fn a_full_stream_misses_and_a_closed_outlet_refuses() {
        let outlet = Outlet::new(1, 3);
        let _stream = outlet.open(None).expect("open");
        for _ in 0..3 {
            outlet.send(json("x")).expect("room in the channel");
        }
        assert_eq!(outlet.send(json("y")), Err(Missed::Full));
        assert!(!outlet.is_drained());
        outlet.close();
        assert!(outlet.open(None).is_none());
        assert_eq!(outlet.send_once(json("z")), Err(Missed::NoStream));
    }
}
