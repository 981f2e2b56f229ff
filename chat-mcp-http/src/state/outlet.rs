//! One session's server-to-client message stream: what is written to its GET (SSE)
//! stream, with event ids and a short replay buffer for reconnects.
//!
//! Messages are serialized once, when they are queued, and the GET stream only frames
//! them. The last few (`--stream-replay`) are kept so a client that reconnects with
//! `Last-Event-ID` gets what it missed.
//!
//! Event ids come from the core, not from this process: an event's SSE id is its `seq`
//! (`"17"`), and a message that is not an event (a resource update, a log message) gets
//! the seq of the event before it and a count (`"17.1"`, `"17.2"`). Internally an id is
//! one ordered `u64`, `seq << 20 | count` ([`display_id`], [`parse_id`]). So after a
//! restart on a durable store a `Last-Event-ID` still means the same point, and the
//! events after it that the new process never carried are read back from the core's
//! inbox ([`Outlet::open_with`]). The queue to the open stream is
//! bounded (`--event-buffer`): a client that stops reading loses pushes beyond it, never
//! blocks anyone else, and still finds every event in the core (`wait_for_events`; the
//! `seq` gap tells it to fetch). Without an open stream, messages only go to the replay
//! buffer.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;

/// Bits of an id below the event seq (see the module docs).
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The SSE id of position `id`: `"seq"` for an event, `"seq.count"` for what followed it.
pub fn display_id(id: u64) -> String {
    let (seq, count) = (id >> COUNT_BITS, id & COUNT_MASK);
    if count == 0 { seq.to_string() } else { format!("{seq}.{count}") }
}

/// The position of an SSE id written by [`display_id`]; `None` for anything else.
pub fn parse_id(text: &str) -> Option<u64> {
    let (seq, count) = match text.split_once('.') {
        Some((seq, count)) => (seq.parse::<u64>().ok()?, count.parse::<u64>().ok()?),
        None => (text.parse::<u64>().ok()?, 0),
    };
    (seq >> (64 - COUNT_BITS) == 0 && count <= COUNT_MASK).then_some(seq << COUNT_BITS | count)
}

/// The position of the event with `seq`.
pub fn event_position(seq: u64) -> u64 {
    seq.saturating_mul(1 << COUNT_BITS)
}

/// A serialized JSON-RPC message and its SSE event id.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The position ([`display_id`] makes the SSE id): the message's own for a replayable
    /// message, the stream's current one for one that is not (a keep-alive ping), so a
    /// client that resumes from any id it saw misses nothing.
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
    /// Where this process took the session over (a restart on a durable store): the
    /// events up to it are in the core's inbox, not in `replay`.
    floor: u64,
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

    /// A session taken over after a restart, whose newest event so far is `seq`: the
    /// stream goes on after it.
    pub fn start_after_event(&self, seq: u64) {
        let mut inner = self.lock();
        let position = event_position(seq);
        inner.next_id = position;
        inner.sent_through = position;
        inner.floor = position;
    }

    /// Where this process took the session over (see [`Outlet::start_after_event`]).
    pub fn floor(&self) -> u64 {
        self.lock().floor
    }

    /// Queues the event with `seq` (replayable).
    pub fn send_event(&self, seq: u64, json: std::sync::Arc<str>) -> Result<(), Missed> {
        self.queue(Some(seq), json)
    }

    /// Queues a replayable message that is not an event.
    pub fn send(&self, json: std::sync::Arc<str>) -> Result<(), Missed> {
        self.queue(None, json)
    }

    fn queue(&self, seq: Option<u64>, json: std::sync::Arc<str>) -> Result<(), Missed> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(Missed::NoStream);
        }
        // Ids only grow, also should a session's seq not (it never rebinds in practice).
        let next = inner.next_id.saturating_add(1);
        inner.next_id = seq.map_or(next, |seq| event_position(seq).max(next));
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
        self.open_with(after, Vec::new())
    }

    /// [`Outlet::open`] for a client that resumes from before [`Outlet::floor`]: `earlier`
    /// are the events after its `Last-Event-ID` up to the floor, read from the core, as
    /// `(seq, message)`; they go first.
    pub fn open_with(&self, after: Option<u64>, earlier: Vec<(u64, std::sync::Arc<str>)>) -> Option<Opened> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        let (tx, rx) = mpsc::channel((self.capacity.max(self.replay) + earlier.len()).max(1));
        let after = after.unwrap_or(inner.sent_through).min(inner.next_id);
        let mut newest = None;
        let floor = inner.floor;
        for (seq, json) in earlier {
            let id = event_position(seq);
            if id > after && id <= floor {
                let _ = tx.try_send(Frame { id, replay: true, json });
                newest = Some(id);
            }
        }
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

    #[test]
    fn ids_are_event_seqs_and_counts_after_them() {
        let outlet = Outlet::new(8, 8);
        let mut stream = outlet.open(None).expect("open").frames;
        outlet.send_event(1, json("e1")).expect("sent");
        outlet.send(json("update")).expect("sent");
        outlet.send(json("update")).expect("sent");
        outlet.send_event(2, json("e2")).expect("sent");
        let ids: Vec<_> = std::iter::from_fn(|| stream.try_recv().ok()).map(|f| display_id(f.id)).collect();
        assert_eq!(ids, ["1", "1.1", "1.2", "2"]);
        for id in ["0", "1", "1.1", "1.2", "2", "123456.789"] {
            assert_eq!(parse_id(id).map(display_id).as_deref(), Some(id));
        }
        assert!(parse_id("1.1") < parse_id("1.2") && parse_id("1.2") < parse_id("2"));
        for junk in ["", "x", "1.", ".1", "1.2.3", "-1", "1.1048576", "post-3-1"] {
            assert_eq!(parse_id(junk), None, "{junk}");
        }
    }

    #[test]
    fn a_restarted_session_resumes_from_the_core_then_the_buffer() {
        // After a restart: the session's newest event was 5; the core still holds 4 and 5.
        let outlet = Outlet::new(8, 8);
        outlet.start_after_event(5);
        assert_eq!(outlet.floor(), event_position(5));
        outlet.send_event(6, json("e6")).expect_err("no stream yet");
        // The client saw up to 3: 4 and 5 come from the core, 6 from the buffer.
        let earlier = vec![(4, json("e4")), (5, json("e5"))];
        let opened = outlet.open_with(parse_id("3"), earlier.clone()).expect("open");
        let mut frames = opened.frames;
        let got: Vec<_> = std::iter::from_fn(|| frames.try_recv().ok()).map(|f| display_id(f.id)).collect();
        assert_eq!(got, ["4", "5", "6"]);
        // A client that saw 5 gets only 6; one without Last-Event-ID gets what no stream took.
        let mut frames = outlet.open_with(parse_id("5"), earlier).expect("open").frames;
        let got: Vec<_> = std::iter::from_fn(|| frames.try_recv().ok()).map(|f| display_id(f.id)).collect();
        assert_eq!(got, ["6"]);
        let fresh = Outlet::new(8, 8);
        fresh.start_after_event(5);
        assert_eq!(fresh.open(None).expect("open").position, event_position(5));
    }
}
