//! Server-to-client messages, serialized once into the JSON a session's GET stream
//! carries: core events as notifications named after the event (the envelope, with its
//! `seq`, as params), `notifications/resources/updated`, and keep-alive pings.

use std::sync::Arc;

use chat_core::Envelope;
use rmcp::model::{
    CustomNotification, NumberOrString, PingRequest, ResourceUpdatedNotification,
    ResourceUpdatedNotificationParam, ServerJsonRpcMessage, ServerNotification, ServerRequest,
};

fn to_json(message: &ServerJsonRpcMessage) -> Option<Arc<str>> {
    match serde_json::to_string(message) {
        Ok(json) => Some(Arc::from(json)),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a server message");
            None
        }
    }
}

/// A core event as a notification.
pub fn event(envelope: &Envelope) -> Option<Arc<str>> {
    let params = serde_json::to_value(envelope).ok()?;
    let notification = CustomNotification::new(envelope.event.method(), Some(params));
    to_json(&ServerJsonRpcMessage::notification(ServerNotification::CustomNotification(notification)))
}

/// `notifications/resources/updated` for `uri`.
pub fn resource_updated(uri: String) -> Option<Arc<str>> {
    let notification = ResourceUpdatedNotification::new(ResourceUpdatedNotificationParam::new(uri));
    to_json(&ServerJsonRpcMessage::notification(ServerNotification::ResourceUpdatedNotification(
        notification,
    )))
}

/// The JSON-RPC id of keep-alive ping `n` is this prefix and `n`.
pub const PING_PREFIX: &str = "keepalive-";

/// Keep-alive `ping` number `n`; the client's answer (a POSTed response) tells the server
/// it is still there (see `Slot::ping_answered`).
pub fn ping(n: u64) -> Option<Arc<str>> {
    let id = NumberOrString::String(Arc::from(format!("{PING_PREFIX}{n}")));
    to_json(&ServerJsonRpcMessage::request(ServerRequest::PingRequest(PingRequest::default()), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_rpc() {
        let ping: serde_json::Value = serde_json::from_str(&ping(7).expect("ping")).expect("json");
        assert_eq!(ping["method"], "ping");
        assert_eq!(ping["id"], "keepalive-7");
        let updated = resource_updated("chat://inbox".into()).expect("updated");
        let updated: serde_json::Value = serde_json::from_str(&updated).expect("json");
        assert_eq!(updated["method"], "notifications/resources/updated");
        assert_eq!(updated["params"]["uri"], "chat://inbox");
    }
}
