//! Tool arguments. Their doc comments become the JSON-schema descriptions a language model
//! reads in `tools/list`, so they say what to pass and why.
//!
//! Before these types see the arguments, `arguments.rs` refuses unknown names (listing
//! the valid ones) and reads scalars sent as strings (`"5"`, `"true"`) as the types
//! declared here. Missing or mistyped fields produce an `isError` result naming the
//! problem.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// Accepts `["a", "b"]`, or a single string `"a, b"` split on commas: models often pass
/// a list as one string.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::Many(list)) => Some(list),
        Some(OneOrMany::One(text)) => {
            Some(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        }
    })
}

/// Arguments of `enter_queue`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct EnterQueueArgs {
    /// Your user id (1-64 of letters, digits, `-_.@:`). Omit it to get a generated one, or to keep the identity this session already has.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The name your partner sees. Default "Anonymous".
    #[serde(default)]
    pub display_name: Option<String>,
    /// Topics you would like to talk about, e.g. ["rust", "music"]. Someone sharing one is preferred; after a short wait anyone is accepted.
    #[serde(default, deserialize_with = "one_or_many")]
    pub interests: Option<Vec<String>>,
    /// The resume_token of `user_id`, when it is an identity you had before (an id, once bound, is its token holder's).
    #[serde(default)]
    pub resume_token: Option<String>,
}

/// Arguments of `send_message`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SendMessageArgs {
    /// The chat room to send to (from `chatroom.found` or `enter_queue`). Give this OR `recipient_id`, not both.
    #[serde(default)]
    pub room_id: Option<String>,
    /// A client id to send a direct message to (agent messaging; it waits in their mailbox if they are offline). Give this OR `room_id`, not both.
    #[serde(default)]
    pub recipient_id: Option<String>,
    /// The text to send (plain text or markdown, at most 16 KiB by default).
    pub message: String,
    /// Optional, for compatibility: your own client id. It must match this session's identity; if the session has none yet, it checks in as this id first.
    #[serde(default)]
    pub sender_id: Option<String>,
    /// Optional key of your own for this message (1-64 of letters, digits, `-_.@:`). Retrying with the same key (e.g. after a lost reply) returns the first result instead of sending twice.
    #[serde(default)]
    pub client_message_id: Option<String>,
}

/// Arguments of `leave_chat`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct LeaveChatArgs {
    /// The room to leave.
    pub room_id: String,
    /// `true` to go straight back into the queue for a new partner ("next").
    #[serde(default)]
    pub requeue: Option<bool>,
}

/// Arguments of `set_typing`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SetTypingArgs {
    /// The chat room you are typing in (roulette). Give this OR `recipient_id`, not both.
    #[serde(default)]
    pub room_id: Option<String>,
    /// The client id you are writing a direct message to (agent messaging); they get `direct.typing` while they are online. Give this OR `room_id`, not both.
    #[serde(default)]
    pub recipient_id: Option<String>,
    /// `true` while composing (default), `false` when you stop. It clears itself after a few seconds without a refresh.
    #[serde(default)]
    pub typing: Option<bool>,
}

/// Arguments of `block_partner`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct BlockPartnerArgs {
    /// The room whose partner to block. The chat ends and you are never matched again.
    pub room_id: String,
    /// Optional reason, kept in the abuse report for moderators.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Arguments of `get_history`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct GetHistoryArgs {
    /// A room you are or were in (readable for a while after it ended).
    pub room_id: String,
}

/// Arguments of `checkin_client`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct CheckinArgs {
    /// The id other clients use to message you, e.g. "frontend-ide" (1-64 of letters, digits, `-_.@:`). An id that exists already (checked in before, or registered by the operator) needs its `resume_token`.
    pub client_id: String,
    /// A human-readable name. Default: the client id.
    #[serde(default)]
    pub name: Option<String>,
    /// What you can help with, free-form labels such as ["code-review", "python"].
    #[serde(default, deserialize_with = "one_or_many")]
    pub capabilities: Option<Vec<String>>,
    /// The resume_token you got when you first checked in as `client_id` (or the secret an operator registered it with). Needed whenever the id exists already.
    #[serde(default)]
    pub resume_token: Option<String>,
}

/// Arguments of `get_messages`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct GetMessagesArgs {
    /// Optional, for compatibility: your client id. It must match this session's identity; if the session has none yet, it checks in as this id first.
    #[serde(default)]
    pub client_id: Option<String>,
    /// At most this many messages (default and cap: the server's fetch limit, 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `true` to look without removing them from the mailbox.
    #[serde(default)]
    pub peek: Option<bool>,
}

/// Arguments of `send_message_and_wait`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SendAndWaitArgs {
    /// The client id to message.
    pub recipient_id: String,
    /// The text to send.
    pub message: String,
    /// Seconds to wait for their reply (default 60, capped by the server, 300 by default). On timeout your message stays in their mailbox; their later reply arrives as an event (`wait_for_events`) or via `get_messages`.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Optional, for compatibility: your own client id (must match this session's identity).
    #[serde(default)]
    pub sender_id: Option<String>,
    /// Optional key of your own for this message; a retry with the same key does not send it again.
    #[serde(default)]
    pub client_message_id: Option<String>,
}

/// Arguments of `resume_session`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ResumeArgs {
    /// The identity to take back (your user id or client id).
    pub user_id: String,
    /// The resume token you got when the identity was first bound.
    pub resume_token: String,
}

/// Arguments of `wait_for_events`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct WaitForEventsArgs {
    /// Pass `next_after_seq` from your previous result. Events up to it are acknowledged (removed) and only newer ones are returned. Omit it to get every unacknowledged event.
    #[serde(default)]
    pub after_seq: Option<u64>,
    /// Seconds to wait when nothing is pending (default 25, capped at 50 so it returns before typical 60 s client timeouts). 0 returns at once.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// At most this many events (default and cap: the server's fetch limit, 100).
    #[serde(default)]
    pub limit: Option<usize>,
}
