//! Session renewal after HTTP 404 (server restarted, or session expired).
//!
//! The host believes its session is still initialized and will not send
//! `initialize` again, so the bridge replays the host's own handshake: the
//! original `initialize` params under an id the bridge owns (its response is
//! swallowed, the host never asked for it) and `notifications/initialized`.
//! Then it tells the host with a `notifications/message` warning, because
//! server-side state of the old session (joined rooms, subscriptions) is gone.
//!
//! Concurrent failures (several requests and the GET stream can all see the
//! 404) renew only once: each caller passes the session generation it failed
//! in, and only the first one to take the lock in that generation acts.

use serde_json::Value;

use crate::bridge::Bridge;
use crate::forward::Tracker;
use crate::jsonrpc;
use crate::sse::{self, Cursor};
use crate::upstream::{PostReply, Posted, SessionState, UpstreamError};

/// Why the session could not be renewed.
#[derive(Debug)]
pub enum RenewError {
    /// The host never initialized, so there is nothing to replay.
    NoHandshake,
    Upstream(UpstreamError),
    /// The server answered the replayed initialize unexpectedly.
    Rejected(String),
}

impl RenewError {
    pub fn describe(&self) -> String {
        match self {
            RenewError::NoHandshake => "the host has not sent initialize yet".into(),
            RenewError::Upstream(e) => e.describe(),
            RenewError::Rejected(why) => why.clone(),
        }
    }
}

impl From<UpstreamError> for RenewError {
    fn from(e: UpstreamError) -> Self {
        RenewError::Upstream(e)
    }
}

impl Bridge {
    /// Re-initializes the session unless another task already did so since
    /// `failed_generation`.
    pub async fn renew(&self, failed_generation: u64) -> Result<(), RenewError> {
        let _lock = self.upstream.renew_lock.lock().await;
        let current = self.upstream.current();
        if current.generation != failed_generation {
            return Ok(());
        }
        let handshake = self.upstream.handshake().ok_or(RenewError::NoHandshake)?;
        let n = self.renewals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let replay = handshake.initialize.with_id(&format!("{}-reinit-{n}", jsonrpc::LOGGER));
        tracing::warn!(
            url = self.url(),
            "the server no longer knows the session (HTTP 404); re-initializing"
        );

        let Posted { reply, session_id } = self.upstream.post(&replay, None).await?;
        let mut tracker = Tracker::swallowing(&replay);
        match reply {
            PostReply::Accepted => {
                return Err(RenewError::Rejected(
                    "the server accepted initialize without answering it".into(),
                ));
            }
            PostReply::Json(body) => self.deliver_payload(&body, &mut tracker).await,
            PostReply::Sse(resp) => {
                let mut events = sse::events(resp, self.upstream.timeout());
                let mut cursor = Cursor::default();
                let _ = self.pump(&mut events, &mut cursor, &mut tracker, true).await;
            }
        }
        let response = tracker
            .take_captured()
            .ok_or_else(|| RenewError::Rejected("no response to the replayed initialize".into()))?;
        if response.is_error_response() {
            return Err(RenewError::Rejected(format!(
                "the server rejected the replayed initialize: {}",
                response.raw()
            )));
        }

        let protocol_version = response.protocol_version();
        let session = SessionState {
            session_id,
            protocol_version: protocol_version.and_then(|v| v.parse().ok()),
            generation: current.generation,
            ready: false,
        };
        let initialized =
            handshake.initialized.unwrap_or_else(|| jsonrpc::notification("notifications/initialized", None));
        self.upstream.post(&initialized, Some(&session)).await?;
        let state = self.upstream.install_session(session.session_id, protocol_version, None, true);
        tracing::warn!("session renewed");
        tracing::debug!(session = ?state.session_id, "new session id");
        self.out.reset_dedupe().await;

        self.emit(jsonrpc::log_notification(
            "warning",
            Value::String(format!(
                "The MCP server at {} no longer knew this session (it restarted or the \
                 session expired). The bridge opened a new session; state the server kept \
                 for the old one (e.g. joined rooms, subscriptions) may be gone.",
                self.url()
            )),
        ))
        .await;
        Ok(())
    }
}
