//! Server-Sent Events handling: turning a response body into events, and the
//! per-stream bookkeeping needed to resume a stream without duplicates.
//!
//! Parsing is done by the `sse-stream` crate (the one rmcp uses); this module
//! only adds an idle timeout and the cursor logic.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use sse_stream::{Error as SseError, Sse, SseStream};

use crate::dedupe::RecentSet;

/// Boxed stream of parsed SSE events.
pub type Events = Pin<Box<dyn Stream<Item = Result<Sse, SseError>> + Send>>;

/// How many event ids of one stream are remembered for duplicate detection.
const SEEN_IDS: usize = 4096;

/// Why a response body stopped yielding bytes.
#[derive(Debug)]
pub enum BodyError {
    Http(reqwest::Error),
    /// Nothing at all (not even a keep-alive comment) arrived for this long.
    Idle(Duration),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Http(e) => write!(f, "{}", crate::upstream::error_chain(e)),
            BodyError::Idle(d) => write!(f, "no data from the server for {}s (see --timeout)", d.as_secs()),
        }
    }
}

impl std::error::Error for BodyError {}

/// Parses `resp`'s body as SSE. With `idle = Some(d)`, the stream fails if
/// no bytes arrive for `d`: that bounds a silent, half-dead connection while
/// still allowing arbitrarily long tool calls on servers that send
/// keep-alives.
pub fn events(resp: reqwest::Response, idle: Option<Duration>) -> Events {
    let bytes = Box::pin(resp.bytes_stream());
    let guarded = futures::stream::unfold((bytes, false), move |(mut bytes, failed)| async move {
        if failed {
            return None;
        }
        let next = match idle {
            Some(limit) => match tokio::time::timeout(limit, bytes.next()).await {
                Ok(next) => next,
                Err(_) => return Some((Err(BodyError::Idle(limit)), (bytes, true))),
            },
            None => bytes.next().await,
        };
        match next {
            Some(Ok(chunk)) => Some((Ok(chunk), (bytes, false))),
            Some(Err(e)) => Some((Err(BodyError::Http(e)), (bytes, true))),
            None => None,
        }
    });
    Box::pin(SseStream::from_bytes_stream(guarded))
}

/// Position in one logical SSE stream, kept across reconnects of that stream.
#[derive(Debug)]
pub struct Cursor {
    /// Id of the last event received; sent as `Last-Event-ID` on resume.
    pub last_event_id: Option<String>,
    /// Reconnect delay requested by the server with `retry:`.
    pub retry: Option<Duration>,
    seen: RecentSet<String>,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor { last_event_id: None, retry: None, seen: RecentSet::new(SEEN_IDS) }
    }
}

impl Cursor {
    /// Records `event` and returns its payload if it should be delivered:
    /// non-empty `message` data whose id this stream has not delivered yet.
    ///
    /// Events without data (e.g. rmcp's priming event) still move the cursor
    /// but are not remembered as delivered: rmcp gives its GET priming event
    /// the same id as the first real message.
    pub fn accept(&mut self, event: Sse) -> Option<String> {
        if let Some(ms) = event.retry {
            self.retry = Some(Duration::from_millis(ms));
        }
        if let Some(id) = &event.id {
            self.last_event_id = (!id.is_empty()).then(|| id.clone());
        }
        let data = event.data?;
        if data.trim().is_empty() {
            return None;
        }
        if let Some(kind) = event.event.as_deref()
            && kind != "message"
        {
            tracing::debug!(event = kind, "ignoring non-message SSE event");
            return None;
        }
        if let Some(id) = event.id.filter(|id| !id.is_empty())
            && !self.seen.insert(id.clone())
        {
            tracing::debug!(event_id = id, "dropping replayed SSE event");
            return None;
        }
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: Option<&str>, data: Option<&str>) -> Sse {
        Sse { event: None, data: data.map(str::to_string), id: id.map(str::to_string), retry: None }
    }

    #[test]
    fn cursor_tracks_ids_and_drops_replays() {
        let mut c = Cursor::default();
        // priming event: moves the cursor, delivers nothing, and does not
        // shadow a real event with the same id
        let mut priming = ev(Some("0"), Some(""));
        priming.retry = Some(250);
        assert_eq!(c.accept(priming), None);
        assert_eq!(c.last_event_id.as_deref(), Some("0"));
        assert_eq!(c.retry, Some(Duration::from_millis(250)));
        assert_eq!(c.accept(ev(Some("0"), Some("{}"))), Some("{}".into()));
        assert_eq!(c.accept(ev(Some("1"), Some("{\"a\":1}"))), Some("{\"a\":1}".into()));
        assert_eq!(c.accept(ev(Some("1"), Some("{\"a\":1}"))), None);
        // events without an id are always delivered
        assert_eq!(c.accept(ev(None, Some("{}"))), Some("{}".into()));
        assert_eq!(c.last_event_id.as_deref(), Some("1"));
        let mut other = ev(Some("2"), Some("{}"));
        other.event = Some("endpoint".into());
        assert_eq!(c.accept(other), None);
    }
}
