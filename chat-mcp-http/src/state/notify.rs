//! The outbound side: one pusher task per session turns queued core events into MCP
//! notifications on that session.
//!
//! rmcp's per-session channels hold 16 messages and `send_notification` waits when they
//! are full, so a client that stops reading its SSE stream would stall whoever sends to
//! it. Each session therefore has its own queue and its own task: a stalled client holds
//! up only its own pusher, never the core, the caller or other sessions. The queue never
//! blocks the sender; past `--event-buffer` entries further pushes are skipped. Nothing is
//! lost when a push fails or is skipped: every event stays in the core's inbox until the
//! client acknowledges it with `wait_for_events`, and the `seq` gap tells it to fetch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chat_core::{Envelope, Event};
use rmcp::model::{CustomNotification, ResourceUpdatedNotificationParam, ServerNotification};
use rmcp::service::ServiceError;
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::resources;
use crate::state::slot::Subscriptions;

/// Something to send to one session.
#[derive(Debug)]
pub enum Push {
    /// A core event: sent as a custom notification named after the event, with the
    /// envelope (including `seq`) as params; plus `resources/updated` for subscribed
    /// resources it changes.
    Event(Arc<Envelope>),
    /// A resource changed for another reason (for example the caller's own message).
    Resource(String),
}

/// The per-session pusher task.
pub struct Pusher {
    peer: Peer<RoleServer>,
    rx: mpsc::UnboundedReceiver<Push>,
    queued: Arc<AtomicUsize>,
    subscriptions: Arc<Subscriptions>,
    metrics: Arc<Metrics>,
}

impl Pusher {
    /// A pusher draining `rx` into `peer`.
    pub fn new(
        peer: Peer<RoleServer>,
        (rx, queued): (mpsc::UnboundedReceiver<Push>, Arc<AtomicUsize>),
        subscriptions: Arc<Subscriptions>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Pusher { peer, rx, queued, subscriptions, metrics }
    }

    /// Runs until the session's slot is dropped (queue closed) or the session is gone.
    pub async fn run(mut self) {
        while let Some(push) = self.rx.recv().await {
            let alive = match push {
                Push::Event(envelope) => self.push_event(envelope).await,
                Push::Resource(uri) => self.push_resource(uri).await,
            };
            self.queued.fetch_sub(1, Ordering::AcqRel);
            if !alive {
                // The session is gone; what is left stays fetchable in the core.
                self.rx.close();
                while self.rx.try_recv().is_ok() {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    self.metrics.push_failed();
                }
                break;
            }
        }
    }

    async fn push_event(&self, envelope: Arc<Envelope>) -> bool {
        let room = envelope.event.room_id().cloned();
        let touches_inbox = !matches!(envelope.event, Event::PartnerTyping(_));
        let method = envelope.event.method();
        let seq = envelope.seq;
        let params = match serde_json::to_value(&envelope) {
            Ok(value) => value,
            Err(error) => {
                tracing::error!(%error, "cannot serialize an event");
                return true;
            }
        };
        let notification = CustomNotification::new(method, Some(params));
        match self.peer.send_notification(ServerNotification::CustomNotification(notification)).await {
            Ok(()) => {
                self.metrics.event_pushed();
                tracing::debug!(method, seq, "event pushed");
            }
            Err(error) => {
                self.metrics.push_failed();
                tracing::debug!(method, seq, %error, "event not pushed; it stays fetchable");
                return !matches!(error, ServiceError::TransportClosed);
            }
        }
        if self.subscriptions.is_empty() {
            return true;
        }
        if touches_inbox && !self.push_resource(resources::INBOX_URI.to_owned()).await {
            return false;
        }
        match room {
            Some(room) => self.push_resource(resources::room_uri(&room)).await,
            None => true,
        }
    }

    /// Sends `resources/updated` if the session subscribed to `uri`. `false` = gone.
    async fn push_resource(&self, uri: String) -> bool {
        if !self.subscriptions.contains(&uri) {
            return true;
        }
        match self.peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await {
            Ok(()) => {
                self.metrics.resource_updated();
                true
            }
            Err(error) => !matches!(error, ServiceError::TransportClosed),
        }
    }
}
