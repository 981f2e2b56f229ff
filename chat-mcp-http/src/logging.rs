//! The MCP `logging` capability: `logging/setLevel` per session, and
//! `notifications/message` for what the server does on a session's behalf without being
//! asked, which its client (or the person watching the host's log) may want to know:
//!
//! | level | when |
//! |---|---|
//! | `debug` | an argument sent as a string was read as another type (`"5"` as 5) |
//! | `info` | `sender_id` / `client_id` checked the session in as that client |
//! | `warning` | events were dropped for good because the session's inbox overflowed |
//!
//! A session that never sets a level gets [`DEFAULT_LEVEL`] and above. Messages go on
//! the session's GET stream and are not kept for replay: they must not push chat events
//! out of the short replay buffer, and a client without a stream loses nothing it needs
//! (they explain; the tool results carry what a client acts on).
#![allow(deprecated)] // Logging is "legacy-only" in rmcp 3.9 but current for 2025-11-25 clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use chat_core::SessionId;
use rmcp::model::{
    LoggingLevel, LoggingMessageNotification, LoggingMessageNotificationParam, ServerJsonRpcMessage,
    ServerNotification,
};
use serde_json::Value;

use crate::handler::ChatServer;
use crate::state::slot::Slot;

/// The level of a session that has not called `logging/setLevel`: warnings and worse
/// are worth sending unasked; the rest only to a client that asks for it.
pub const DEFAULT_LEVEL: LoggingLevel = LoggingLevel::Warning;

/// The `logger` of every message.
pub const LOGGER: &str = "mcp-chat";

/// Severity order (RFC 5424, as the MCP spec uses it): `debug` lowest.
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The level each session set. Kept beside the tools (every request's view of a session
/// reaches them) rather than in the session's slot, with a weak link to the slot so the
/// entries of ended sessions are dropped: each `set` prunes them, which bounds the table
/// by the sessions alive at the last `set`.
#[derive(Default)]
pub struct Levels(Mutex<HashMap<SessionId, (Weak<Slot>, LoggingLevel)>>);

impl Levels {
    /// Records `slot`'s level.
    pub fn set(&self, slot: &Arc<Slot>, level: LoggingLevel) {
        let mut levels = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        levels.retain(|_, (weak, _)| weak.upgrade().is_some_and(|s| !s.ending().is_cancelled()));
        levels.insert(slot.id, (Arc::downgrade(slot), level));
    }

    /// `slot`'s level, or [`DEFAULT_LEVEL`].
    pub fn get(&self, slot: &Slot) -> LoggingLevel {
        let levels = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        levels.get(&slot.id).map_or(DEFAULT_LEVEL, |(_, level)| *level)
    }
}

/// `notifications/message` with `data`, serialized.
pub fn message(level: LoggingLevel, data: Value) -> Option<Arc<str>> {
    let param = LoggingMessageNotificationParam::new(level, data).with_logger(LOGGER);
    let notification = ServerNotification::LoggingMessageNotification(LoggingMessageNotification::new(param));
    match serde_json::to_string(&ServerJsonRpcMessage::notification(notification)) {
        Ok(json) => Some(Arc::from(json)),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a log message");
            None
        }
    }
}

impl ChatServer {
    /// `logging/setLevel` for this session.
    pub(crate) fn set_log_level(&self, level: LoggingLevel) {
        self.surface.levels.set(&self.slot, level);
    }

    /// A `debug` message: see the table above.
    pub(crate) fn log_debug(&self, data: Value) {
        self.log(LoggingLevel::Debug, data);
    }

    /// An `info` message: see the table above.
    pub(crate) fn log_info(&self, data: Value) {
        self.log(LoggingLevel::Info, data);
    }

    /// A `warning` message: see the table above.
    pub(crate) fn log_warning(&self, data: Value) {
        self.log(LoggingLevel::Warning, data);
    }

    /// Sends `data` (an object with at least `message`) to this session's client if
    /// `level` is at or above the level it set.
    fn log(&self, level: LoggingLevel, data: Value) {
        if rank(level) < rank(self.surface.levels.get(&self.slot)) {
            return;
        }
        if let Some(json) = message(level, data) {
            // Best effort: without an open stream the message is dropped (see above).
            let _ = self.slot.outlet.send_once(json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_per_session_and_forgotten_when_it_ends() {
        let levels = Levels::default();
        let slot = |n| Arc::new(Slot::new(SessionId(n), Arc::from(format!("s{n}")), 4, 4));
        let (a, b) = (slot(1), slot(2));
        assert_eq!(levels.get(&a), DEFAULT_LEVEL);
        levels.set(&a, LoggingLevel::Debug);
        assert_eq!(levels.get(&a), LoggingLevel::Debug);
        assert_eq!(levels.get(&b), DEFAULT_LEVEL);
        a.mark_end();
        levels.set(&b, LoggingLevel::Error);
        assert_eq!(levels.get(&a), DEFAULT_LEVEL, "an ended session's entry is pruned");
        assert!(rank(LoggingLevel::Warning) > rank(LoggingLevel::Notice));
    }

    #[test]
    fn messages_are_json_rpc_notifications() {
        let json = message(LoggingLevel::Info, serde_json::json!({"message": "hi"})).expect("json");
        let value: Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(value["method"], "notifications/message");
        assert_eq!(
            value["params"],
            serde_json::json!({"level": "info", "logger": "mcp-chat", "data": {"message": "hi"}})
        );
    }
}
