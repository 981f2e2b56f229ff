//! The server -> client stream (HTTP GET, SSE).
//!
//! Once the handshake is complete the bridge keeps one GET stream open for
//! the session, so notifications the server pushes outside any request (a
//! chat message from another user) reach the host as they happen. The
//! stream is kept alive across network blips and server restarts:
//! * reconnects back off exponentially, starting at the server's `retry:`;
//! * each reconnect sends `Last-Event-ID`, and replayed events are dropped;
//! * a 404 means the session is gone: renew it (see [`crate::renew`]);
//! * a 405 means the server has no GET stream: stop asking.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::forward::Tracker;
use crate::sse::{self, Cursor};
use crate::upstream::{SessionState, UpstreamError};

/// First reconnect delay when the server gave no `retry:` hint.
const BASE_DELAY: Duration = Duration::from_secs(1);
/// Longest delay between reconnect attempts.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// What to do after a session's stream loop ends.
enum Flow {
    /// A new session was installed: start over with it.
    NewSession,
    /// Nothing more to do in this session (wait for a new one).
    Idle,
    /// Never open a GET stream again (server said 405) or shutting down.
    Stop,
}

/// Runs for the lifetime of the bridge.
pub async fn run(bridge: Arc<Bridge>) {
    let mut rx = bridge.upstream.subscribe();
    let mut idle_in: Option<u64> = None;
    loop {
        let waited = {
            let wait = rx.wait_for(|s| s.ready && Some(s.generation) != idle_in);
            tokio::select! {
                _ = bridge.shutdown.cancelled() => return,
                state = wait => state.map(|s| s.clone()),
            }
        };
        let Ok(session) = waited else {
            return;
        };
        match listen(&bridge, &session, &mut rx).await {
            Flow::NewSession => idle_in = None,
            Flow::Idle => idle_in = Some(session.generation),
            Flow::Stop => return,
        }
    }
}

/// Keeps a GET stream open for `session` until the session changes.
async fn listen(bridge: &Bridge, session: &SessionState, rx: &mut watch::Receiver<SessionState>) -> Flow {
    let generation = session.generation;
    let mut cursor = Cursor::default();
    let mut tracker = Tracker::passive();
    let mut delay = BASE_DELAY;
    let mut connected_once = false;
    let mut complained = false;
    loop {
        let opened = tokio::select! {
            _ = bridge.shutdown.cancelled() => return Flow::Stop,
            _ = rx.wait_for(|s| s.generation != generation) => return Flow::NewSession,
            opened = bridge.upstream.get(session, cursor.last_event_id.as_deref()) => opened,
        };
        match opened {
            Ok(resp) => {
                if complained {
                    tracing::warn!("GET stream reconnected");
                } else {
                    tracing::info!(resumed_from = cursor.last_event_id, "GET stream open");
                }
                connected_once = true;
                complained = false;
                // No idle timeout here: a quiet chat is legitimately silent;
                // TCP keepalive detects dead peers instead.
                let mut events = sse::events(resp, None);
                let end = tokio::select! {
                    _ = bridge.shutdown.cancelled() => return Flow::Stop,
                    _ = rx.wait_for(|s| s.generation != generation) => return Flow::NewSession,
                    end = bridge.pump(&mut events, &mut cursor, &mut tracker, false) => end,
                };
                match end {
                    Ok(()) => tracing::info!("GET stream ended; reconnecting"),
                    Err(e) => tracing::warn!("GET stream broke ({e}); reconnecting"),
                }
                delay = cursor.retry.unwrap_or(BASE_DELAY).min(MAX_DELAY);
            }
            Err(UpstreamError::NoStream) => {
                tracing::info!(
                    "the server offers no GET stream (HTTP 405); server messages arrive only in POST responses"
                );
                return Flow::Stop;
            }
            Err(UpstreamError::SessionGone) if !connected_once => {
                // A 404 on a session that was just created means the GET
                // endpoint does not exist, not that the session expired;
                // renewing would loop forever.
                tracing::warn!("GET for a new session answered 404; not opening a GET stream");
                return Flow::Idle;
            }
            Err(UpstreamError::SessionGone) => match bridge.renew(generation).await {
                Ok(()) => return Flow::NewSession,
                Err(e) => tracing::warn!("re-initializing the session failed: {}", e.describe()),
            },
            Err(e) if e.is_transient() => {
                if complained {
                    tracing::debug!("GET stream still unavailable: {}", e.describe());
                } else {
                    tracing::warn!("GET stream unavailable ({}); retrying", e.describe());
                    complained = true;
                }
            }
            Err(e) => {
                tracing::warn!("GET stream refused ({}); no server push for this session", e.describe());
                return Flow::Idle;
            }
        }
        tokio::select! {
            _ = bridge.shutdown.cancelled() => return Flow::Stop,
            _ = rx.wait_for(|s| s.generation != generation) => return Flow::NewSession,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}
