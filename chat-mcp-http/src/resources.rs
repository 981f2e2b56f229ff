//! MCP resources: the caller's inbox and room transcripts, with subscriptions.
//!
//! Some hosts surface `notifications/resources/updated` where they ignore custom
//! notifications, so every event also marks the resources it changes as updated for
//! sessions that subscribed (see `state/notify.rs`).
//!
//! - `chat://inbox`: the caller's unacknowledged events (read-only: reading acknowledges
//!   nothing; `wait_for_events` with a cursor does).
//! - `chat://rooms/{room_id}`: a room's transcript, for its two participants.
//! - `chat://inbox/{secret}`: the inbox of a session-less (2026-07-28) session, named by
//!   the `inbox_uri` its binding call returned (see `era.rs`): without a session there
//!   is no "caller" to resolve `chat://inbox` against, so the URI itself says whose.

use chat_core::{ChatError, Command, EventsReply, Reply, SessionId};
use rmcp::ErrorData;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource, ResourceContents,
    ResourceTemplate,
};

use crate::render;
use crate::state::hub::Hub;

/// The caller's inbox.
pub const INBOX_URI: &str = "chat://inbox";
const ROOM_PREFIX: &str = "chat://rooms/";
const INBOX_PREFIX: &str = "chat://inbox/";

/// The inbox URI of a session-less session whose inbox secret is `inbox`.
pub fn inbox_uri(inbox: &str) -> String {
    format!("{INBOX_PREFIX}{inbox}")
}

/// The inbox secret of a session-less inbox URI, if `uri` is one.
pub fn inbox_secret(uri: &str) -> Option<&str> {
    uri.strip_prefix(INBOX_PREFIX).filter(|s| !s.is_empty() && !s.contains('/'))
}

/// The error for a URI a request without a session cannot read.
pub fn sessionless_not_found(uri: &str) -> ErrorData {
    not_found(
        uri,
        format!(
            "'{uri}' is not an inbox of this server: without an MCP session, read the inbox_uri your \
             enter_queue / checkin_client / resume_session result gave (chat://inbox/...), and room \
             transcripts with get_history {{handle, room_id}}"
        ),
    )
}

/// The URI of a room's transcript.
pub fn room_uri(room_id: &str) -> String {
    format!("{ROOM_PREFIX}{room_id}")
}

/// A resource this server serves.
#[derive(Debug, PartialEq, Eq)]
pub enum ChatResource {
    /// `chat://inbox`.
    Inbox,
    /// `chat://rooms/{room_id}`.
    Room(String),
}

/// Parses a URI, or explains which URIs exist.
pub fn parse(uri: &str) -> Result<ChatResource, ErrorData> {
    if uri == INBOX_URI {
        return Ok(ChatResource::Inbox);
    }
    if let Some(room) = uri.strip_prefix(ROOM_PREFIX)
        && !room.is_empty()
        && !room.contains('/')
    {
        return Ok(ChatResource::Room(room.to_owned()));
    }
    Err(not_found(
        uri,
        format!("unknown resource '{uri}'; this server has {INBOX_URI} and {ROOM_PREFIX}{{room_id}}"),
    ))
}

/// `-32002` (resource not found), with the URI in `data` as the MCP spec's example has it.
fn not_found(uri: &str, message: String) -> ErrorData {
    ErrorData::resource_not_found(message, Some(serde_json::json!({ "uri": uri })))
}

/// The JSON-RPC error for a read the core refused.
///
/// A room the caller may not read is "not found", whatever the reason: the core gives an
/// unknown room and someone else's room the same error so that rooms stay private, and a
/// session without an identity is in no room at all. These are resource errors, not
/// `-32600 Invalid Request` (which says the message itself is malformed). Anything else
/// would be a server fault (`-32603`).
fn read_error(uri: &str, error: ChatError) -> ErrorData {
    match error {
        ChatError::UnknownRoom { .. } | ChatError::InvalidId { .. } => not_found(uri, error.to_string()),
        ChatError::NotIdentified => not_found(
            uri,
            format!(
                "{uri} can be read only by the room's participants, and this session has no identity yet: \
                 call resume_session with your resume token (after a reconnect), or enter_queue to chat"
            ),
        ),
        other => ErrorData::internal_error(format!("cannot read {uri}: {other}"), None),
    }
}

/// The inbox, plus the caller's current room when chatting.
pub fn list(hub: &Hub, session: SessionId) -> ListResourcesResult {
    let mut resources = vec![
        Resource::new(INBOX_URI, "inbox")
            .with_title("Your inbox")
            .with_description(
                "Events for you that are not acknowledged yet (messages, matches, partner status).",
            )
            .with_mime_type("text/markdown"),
    ];
    let identity = hub.read(|chat| chat.peek_identity(session));
    if let chat_core::ActivityState::Chatting { room_id, partner } = identity.activity {
        resources.push(
            Resource::new(room_uri(&room_id), format!("room {room_id}"))
                .with_title(format!("Chat with {}", partner.display_name))
                .with_description("Transcript of your current chat room.")
                .with_mime_type("text/markdown"),
        );
    }
    ListResourcesResult::with_all_items(resources)
}

/// The room transcript template.
pub fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(format!("{ROOM_PREFIX}{{room_id}}"), "room")
            .with_title("Chat room transcript")
            .with_description("Recent messages of a room you are or were in.")
            .with_mime_type("text/markdown"),
    ])
}

/// Reads a resource as markdown plus the same data as JSON.
pub async fn read(hub: &Hub, session: SessionId, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    read_parsed(hub, session, parse(uri)?, uri).await
}

/// Reads `resource`, answering for `uri` (which names it: `chat://inbox` in a session, an
/// inbox URI of its own without one).
pub async fn read_parsed(
    hub: &Hub,
    session: SessionId,
    resource: ChatResource,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    let result = match resource {
        // A read-only view: peek, so reading it neither acknowledges events nor resets the
        // eviction count that the next wait_for_events reports.
        ChatResource::Inbox => Ok(hub.read(|chat| {
            let events = chat.peek_events(session, chat.limits().max_fetch);
            let next = events.last().map_or(0, |e| e.seq);
            Reply::Events(EventsReply {
                events,
                next_after_seq: next,
                last_seq: next,
                pending: chat.pending_events(session),
                evicted: 0,
            })
        })),
        ChatResource::Room(room_id) => match hub.command(session, Command::History { room_id }, None).await {
            Ok(answer) => answer.reply,
            Err(unsaved) => return Err(ErrorData::internal_error(unsaved.to_string(), None)),
        },
    };
    let reply = result.map_err(|e| read_error(uri, e))?;
    let now = crate::state::clock::now();
    let text = render::reply(&reply, now);
    let json = serde_json::to_string_pretty(&reply)
        .map_err(|e| ErrorData::internal_error(format!("cannot serialize resource: {e}"), None))?;
    Ok(ReadResourceResult::new(vec![
        with_mime(ResourceContents::text(text, uri), "text/markdown"),
        with_mime(ResourceContents::text(json, uri), "application/json"),
    ]))
}

fn with_mime(contents: ResourceContents, mime: &str) -> ResourceContents {
    match contents {
        ResourceContents::TextResourceContents { uri, text, meta, .. } => {
            ResourceContents::TextResourceContents { uri, mime_type: Some(mime.to_owned()), text, meta }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ErrorCode;

    #[test]
    fn parses_known_uris_only() {
        assert_eq!(parse("chat://inbox").ok(), Some(ChatResource::Inbox));
        assert_eq!(parse("chat://rooms/r_1").ok(), Some(ChatResource::Room("r_1".into())));
        assert!(parse("chat://rooms/").is_err());
        assert!(parse("chat://rooms/a/b").is_err());
        assert!(parse("file:///etc/passwd").is_err());
    }

    #[test]
    fn refused_reads_are_resource_errors() {
        let uri = "chat://rooms/r_1";
        for error in [ChatError::NotIdentified, ChatError::UnknownRoom { room_id: "r_1".into() }] {
            let data = read_error(uri, error);
            assert_eq!(data.code, ErrorCode::RESOURCE_NOT_FOUND);
            assert_eq!(data.data, Some(serde_json::json!({ "uri": uri })));
        }
        assert!(read_error(uri, ChatError::NotIdentified).message.contains("resume_session"));
        assert_eq!(parse("chat://x").err().map(|e| e.code), Some(ErrorCode::RESOURCE_NOT_FOUND));
    }
}
