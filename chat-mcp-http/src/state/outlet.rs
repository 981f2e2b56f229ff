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

/// A serialized JSON-RPC message and its SSE event id.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The SSE event id: the message's own position for a replayable message, the
    /// stream's current position for one that is not (a keep-alive ping), so a client
    /// that resumes from any id it saw misses nothing.
    pub id: u64,
    /// Whether the message is kept for replay (events, resource updates; not pings).
    pub replay: bool,
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

/// A stream just opened: its frames, and what identifies it.
pub struct Opened {
    /// The frames to write, replayed ones first.
    pub frames: mpsc::Receiver<Frame>,
    /// Identifies this stream to [`Outlet::rewind`].
    pub generation: u64,
    /// The id the stream starts after (for its priming event): a client that resumes
    /// from it gets everything this stream carries.
    pub position: u64,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// The newest replayable message handed to a stream.
    sent_through: u64,
    replay: VecDeque<(u64, std::sync::Arc<str>)>,
    stream: Option<mpsc::Sender<Frame>>,
    /// Streams opened so far; the current one is number `generation`.
    generation: u64,
    /// The current stream was given every kept message after this id when it opened.
    stream_after: u64,
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
        Self::offer(&mut inner, Frame { id, replay: true, json })
    }

    /// Queues a message that is not replayed (sent only if a stream is open now).
    pub fn send_once(&self, json: std::sync::Arc<str>) -> Result<(), Missed> {
        let mut inner = self.lock();
        let id = inner.next_id;
        Self::offer(&mut inner, Frame { id, replay: false, json })
    }

    fn offer(inner: &mut Inner, frame: Frame) -> Result<(), Missed> {
        let Some(stream) = &inner.stream else { return Err(Missed::NoStream) };
        let (id, replay) = (frame.id, frame.replay);
        match stream.try_send(frame) {
            Ok(()) => {
                if replay {
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
    pub fn open(&self, after: Option<u64>) -> Option<Opened> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.capacity.max(self.replay).max(1));
        let after = after.unwrap_or(inner.sent_through).min(inner.next_id);
        let mut newest = None;
        for (id, json) in inner.replay.iter().filter(|(id, _)| *id > after) {
            // Cannot fail: the channel is new and at least as large as the buffer.
            let _ = tx.try_send(Frame { id: *id, replay: true, json: json.clone() });
            newest = Some(*id);
        }
        if let Some(newest) = newest {
            inner.sent_through = newest;
        }
        inner.stream = Some(tx);
        inner.generation += 1;
        inner.stream_after = after;
        Some(Opened { frames: rx, generation: inner.generation, position: after })
    }

    /// Stream `generation` broke, and the messages from id `from` on that it was handed
    /// may never have reached the client. If it is still the current stream, they are
    /// kept for the next one; if a newer stream has opened since, they are sent to it now
    /// (unless it already had them).
    pub fn rewind(&self, generation: u64, from: u64) {
        let mut inner = self.lock();
        if inner.closed || from == 0 {
            return;
        }
        if generation == inner.generation {
            inner.stream = None;
            inner.sent_through = inner.sent_through.min(from - 1);
            return;
        }
        if generation > inner.generation || from > inner.stream_after {
            return;
        }
        let through = inner.stream_after;
        let again: Vec<Frame> = inner
            .replay
            .iter()
            .filter(|(id, _)| (from..=through).contains(id))
            .map(|(id, json)| Frame { id: *id, replay: true, json: json.clone() })
            .collect();
        inner.stream_after = from - 1;
        for frame in again {
            if Self::offer(&mut inner, frame).is_err() {
                inner.sent_through = inner.sent_through.min(from - 1);
                return;
            }
        }
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
        let mut first = outlet.open(None).expect("open").frames;
        assert_eq!(first.try_recv().expect("a").id, 1);
        outlet.send(json("b")).expect("sent");
        assert_eq!(first.try_recv().expect("b").id, 2);
        drop(first);
        assert_eq!(outlet.send(json("c")), Err(Missed::NoStream));
        // With Last-Event-ID: what came after it.
        let second = outlet.open(Some(1)).expect("reopen");
        assert_eq!(second.position, 1);
        let mut second = second.frames;
        let ids: Vec<_> = std::iter::from_fn(|| second.try_recv().ok()).map(|f| f.id).collect();
        assert_eq!(ids, [2, 3]);
        // Without: only what no stream has taken.
        drop(second);
        outlet.send(json("d")).expect_err("no stream");
        let mut third = outlet.open(None).expect("reopen").frames;
        let replayed = third.try_recv().expect("d");
        assert_eq!((replayed.id, &*replayed.json), (4, "d"));
        assert!(third.try_recv().is_err());
        // A ping carries the current position as its id and is not kept.
        outlet.send_once(json("ping")).expect("sent");
        let ping = third.try_recv().expect("ping");
        assert_eq!((ping.id, ping.replay), (4, false));
    }

    #[test]
    fn a_full_stream_misses_and_a_closed_outlet_refuses() {
        let outlet = Outlet::new(1, 3);
        let _stream = outlet.open(None).expect("open").frames;
        for _ in 0..3 {
            outlet.send(json("x")).expect("room in the channel");
        }
        assert_eq!(outlet.send(json("y")), Err(Missed::Full));
        assert!(!outlet.is_drained());
        outlet.close();
        assert!(outlet.open(None).is_none());
        assert_eq!(outlet.send_once(json("z")), Err(Missed::NoStream));
    }

    #[test]
    fn what_a_broken_stream_may_have_missed_goes_to_the_next_one() {
        let outlet = Outlet::new(8, 8);
        let old = outlet.open(None).expect("open");
        outlet.send(json("a")).expect("sent");
        outlet.send(json("b")).expect("sent");
        // The client already opened its next stream (no Last-Event-ID) before the server
        // noticed the old one broke: the new stream starts after `b`.
        let mut new = outlet.open(None).expect("reopen").frames;
        assert!(new.try_recv().is_err());
        // The old stream broke having handed out `b` moments ago: `b` goes to the new one.
        outlet.rewind(old.generation, 2);
        let again = new.try_recv().expect("b again");
        assert_eq!((again.id, &*again.json), (2, "b"));
        // Rewinding the same stream again sends nothing twice.
        outlet.rewind(old.generation, 2);
        assert!(new.try_recv().is_err());
        // A current stream that broke keeps its unconfirmed messages for the next stream.
        let current = outlet.open(None).expect("reopen");
        outlet.send(json("c")).expect("sent");
        outlet.rewind(current.generation, 3);
        let mut next = outlet.open(None).expect("reopen").frames;
        assert_eq!(next.try_recv().expect("c").id, 3);
    }
}
