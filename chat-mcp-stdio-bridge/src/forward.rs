//! Host -> server forwarding: POST one host message and relay everything the
//! server sends back on that POST (a JSON body, or an SSE stream carrying
//! notifications, progress, server-to-client requests and finally the
//! response) to stdout as it arrives.
//!
//! The contract with the host: every request gets exactly one answer. If the
//! transport fails, the bridge answers with a JSON-RPC error for the same id
//! rather than leaving the host waiting forever.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::HeaderValue;
use serde_json::json;
use tokio::sync::oneshot;

use crate::bridge::{Bridge, InFlightGuard};
use crate::jsonrpc::{self, Id, Message};
use crate::sse::{self, Cursor, Events};
use crate::upstream::{PostReply, Posted, UpstreamError};

/// How often a POST stream that ended without the response is resumed.
const MAX_RESUMES: u32 = 3;
/// Resume delay when the server gave no `retry:` hint.
const DEFAULT_RESUME_DELAY: Duration = Duration::from_millis(500);
/// Upper bound on a server-requested resume delay.
const MAX_RESUME_DELAY: Duration = Duration::from_secs(10);

/// What is still owed to the host for one forwarded message.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Request ids whose response has not been delivered yet.
    pending: Vec<Id>,
    /// For the host's `initialize`: install the session from its response.
    init: Option<Message>,
    /// `Mcp-Session-Id` of the POST response (for `init`).
    session_id: Option<HeaderValue>,
    /// For the bridge's own re-initialize: keep the response, don't deliver.
    swallow: bool,
    captured: Option<Message>,
    done: Option<oneshot::Sender<()>>,
    guard: Option<InFlightGuard>,
}

impl Tracker {
    /// Tracks the requests in `msg` (none for notifications and responses).
    pub fn new(msg: &Message, guard: InFlightGuard) -> Self {
        Tracker { pending: msg.request_ids(), guard: Some(guard), ..Tracker::default() }
    }

    /// Tracks nothing: for the GET stream, where no request is waiting.
    pub fn passive() -> Self {
        Tracker::default()
    }

    /// For a replayed `initialize`: its response is captured, not delivered.
    pub fn swallowing(msg: &Message) -> Self {
        Tracker { pending: msg.request_ids(), swallow: true, ..Tracker::default() }
    }

    pub fn initializing(mut self, initialize: Message) -> Self {
        self.init = Some(initialize);
        self
    }

    pub fn notify_when_done(mut self, done: oneshot::Sender<()>) -> Self {
        self.done = Some(done);
        self
    }

    pub fn settled(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn take_captured(&mut self) -> Option<Message> {
        self.captured.take()
    }

    fn settle_if_done(&mut self) {
        if self.pending.is_empty() {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
            self.guard = None;
        }
    }
}

/// How a stream ended.
type StreamEnd = Result<(), String>;

impl Bridge {
    /// Forwards `msg` and relays the server's answer. On HTTP 404 for the
    /// session, renews the session and retries once.
    pub async fn forward(self: Arc<Self>, msg: Message, mut tracker: Tracker) {
        // `initialize` always starts a new session, so it goes out without one.
        let fresh = tracker.init.is_some();
        let mut renewed = false;
        loop {
            let session = (!fresh).then(|| self.upstream.current());
            match self.upstream.post(&msg, session.as_ref()).await {
                Ok(Posted { reply, session_id }) => {
                    tracker.session_id = session_id;
                    self.relay(reply, &mut tracker, &msg).await;
                    break;
                }
                Err(UpstreamError::SessionGone) if !renewed => {
                    renewed = true;
                    let generation = session.map_or(0, |s| s.generation);
                    match self.renew(generation).await {
                        // The renewal already sent its own `initialized`.
                        Ok(()) if msg.method() == Some("notifications/initialized") => break,
                        Ok(()) => {
                            tracing::info!(method = msg.method(), "retrying in the new session");
                            continue;
                        }
                        Err(e) => {
                            let cause = format!(
                                "the server lost the session (HTTP 404) and re-initializing failed: {}",
                                e.describe()
                            );
                            self.fail(&mut tracker, &msg, &cause).await;
                            break;
                        }
                    }
                }
                Err(e) => {
                    self.deliver_error_body(&e, &mut tracker).await;
                    self.fail(&mut tracker, &msg, &e.describe()).await;
                    break;
                }
            }
        }
        tracker.settle_if_done();
    }

    /// Relays a successful POST reply.
    async fn relay(&self, reply: PostReply, tracker: &mut Tracker, msg: &Message) {
        match reply {
            PostReply::Accepted => {
                if !tracker.settled() {
                    tracing::debug!(
                        method = msg.method(),
                        "server accepted a request without a body; its response may come on the GET stream"
                    );
                }
            }
            PostReply::Json(body) => {
                self.deliver_payload(&body, tracker).await;
                if !tracker.settled() {
                    self.fail(tracker, msg, "the server's JSON reply contained no response to this request")
                        .await;
                }
            }
            PostReply::Sse(resp) => self.relay_stream(resp, tracker, msg).await,
        }
    }

    /// Relays a POST's SSE stream. If it ends before the response arrived,
    /// resumes it with GET + `Last-Event-ID` (MCP resumability), a few times.
    async fn relay_stream(&self, resp: reqwest::Response, tracker: &mut Tracker, msg: &Message) {
        let timeout = self.upstream.timeout();
        let mut cursor = Cursor::default();
        let mut events = sse::events(resp, timeout);
        let mut resumes = 0;
        loop {
            let end = self.pump(&mut events, &mut cursor, tracker, false).await;
            if tracker.settled() || self.shutdown.is_cancelled() {
                return;
            }
            if tracker.pending.iter().all(|id| self.is_cancelled(id)) {
                tracing::debug!("response stream ended after the host cancelled the request");
                return;
            }
            let mut cause = match end {
                Ok(()) => "the server closed the response stream before answering".to_string(),
                Err(e) => format!("the response stream broke: {e}"),
            };
            let Some(last_event_id) = cursor.last_event_id.clone() else {
                self.fail(tracker, msg, &cause).await;
                return;
            };
            // Reopen the stream from the last event seen.
            loop {
                resumes += 1;
                if resumes > MAX_RESUMES {
                    self.fail(tracker, msg, &cause).await;
                    return;
                }
                let delay = cursor.retry.unwrap_or(DEFAULT_RESUME_DELAY).min(MAX_RESUME_DELAY);
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                tracing::debug!(last_event_id, "resuming response stream");
                let session = self.upstream.current();
                match self.upstream.get(&session, Some(&last_event_id)).await {
                    Ok(resp) => {
                        events = sse::events(resp, timeout);
                        break;
                    }
                    Err(UpstreamError::SessionGone) => {
                        // The request died with the old session; renew so the
                        // host's next calls work, but do not re-run it (it may
                        // already have had effects).
                        if let Err(e) = self.renew(session.generation).await {
                            tracing::warn!("re-initializing failed: {}", e.describe());
                        }
                        let cause = format!(
                            "{cause}; the session is gone (server restarted?), so the request's outcome is unknown"
                        );
                        self.fail(tracker, msg, &cause).await;
                        return;
                    }
                    Err(e) if e.is_transient() => {
                        cause = format!("{cause}; resuming failed: {}", e.describe());
                    }
                    Err(e) => {
                        let cause = format!("{cause}; resuming failed: {}", e.describe());
                        self.fail(tracker, msg, &cause).await;
                        return;
                    }
                }
            }
        }
    }

    /// Reads `events` and delivers their messages until the stream ends, it
    /// fails, the bridge shuts down, or (with `stop_when_settled`) every
    /// tracked response has been seen.
    pub async fn pump(
        &self,
        events: &mut Events,
        cursor: &mut Cursor,
        tracker: &mut Tracker,
        stop_when_settled: bool,
    ) -> StreamEnd {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Err("the bridge is shutting down".into()),
                next = events.next() => next,
            };
            match next {
                None => return Ok(()),
                Some(Err(e)) => return Err(sse_error_text(&e)),
                Some(Ok(event)) => {
                    if let Some(data) = cursor.accept(event) {
                        self.deliver_payload(&data, tracker).await;
                        if stop_when_settled && tracker.settled() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Delivers one JSON payload (a message or a batch) from the server.
    pub async fn deliver_payload(&self, payload: &str, tracker: &mut Tracker) {
        match Message::parse_many(payload) {
            Ok(messages) => {
                for msg in messages {
                    self.deliver(msg, tracker).await;
                }
            }
            Err(e) => tracing::warn!("server sent invalid JSON ({e}): {payload}"),
        }
    }

    async fn deliver(&self, msg: Message, tracker: &mut Tracker) {
        let answered = msg
            .is_response()
            .then(|| msg.id())
            .flatten()
            .and_then(|id| tracker.pending.iter().position(|p| p.matches(&id)));
        let Some(index) = answered else {
            self.emit(msg).await;
            return;
        };
        tracker.pending.remove(index);
        if tracker.swallow {
            tracker.captured = Some(msg);
        } else {
            if let Some(initialize) = tracker.init.take()
                && !msg.is_error_response()
            {
                let state = self.upstream.install_session(
                    tracker.session_id.clone(),
                    msg.protocol_version(),
                    Some(initialize),
                    false,
                );
                tracing::info!(protocol_version = msg.protocol_version(), "session established");
                // The session id lets anyone act in this session: debug only.
                tracing::debug!(session = ?state.session_id, "session id");
                self.out.reset_dedupe().await;
            }
            self.emit(msg).await;
        }
        tracker.settle_if_done();
    }

    /// A failed POST may still carry a JSON-RPC error for the request (e.g. a
    /// 400 with an `error` body); deliver those that answer a tracked id.
    async fn deliver_error_body(&self, error: &UpstreamError, tracker: &mut Tracker) {
        let UpstreamError::Status { body, .. } = error else {
            return;
        };
        let Ok(messages) = Message::parse_many(body) else {
            return;
        };
        for msg in messages {
            let answers = msg.is_response()
                && msg.id().is_some_and(|id| tracker.pending.iter().any(|p| p.matches(&id)));
            if answers {
                self.deliver(msg, tracker).await;
            }
        }
    }

    /// Answers every still-pending request with a transport error, and logs
    /// the failure to stderr.
    async fn fail(&self, tracker: &mut Tracker, msg: &Message, cause: &str) {
        let url = self.url().to_string();
        if tracker.pending.is_empty() {
            tracing::warn!(method = msg.method(), "could not deliver message to {url}: {cause}");
        }
        for id in std::mem::take(&mut tracker.pending) {
            if self.is_cancelled(&id) {
                continue;
            }
            tracing::error!(id = id.raw(), method = msg.method(), "request failed: {url}: {cause}");
            let text = format!("MCP server {url}: {cause}");
            let data = json!({ "url": url, "cause": cause, "bridge": jsonrpc::LOGGER });
            self.emit(jsonrpc::error_reply(Some(&id), jsonrpc::TRANSPORT_ERROR, &text, Some(data))).await;
        }
        tracker.settle_if_done();
    }
}

fn sse_error_text(e: &sse_stream::Error) -> String {
    match e {
        // Body errors wrap BodyError, whose Display already has the chain.
        sse_stream::Error::Body(inner) => inner.to_string(),
        other => format!("invalid SSE from the server: {other}"),
    }
}
