//! The tool calls behind each [`Action`], and identification, decoded into the core's
//! reply types (`structuredContent` is the core's `Reply` JSON, plus extra fields such as
//! `pending_events` that decoding ignores).

use chat_core::{
    BlockedReply, CheckedInReply, ClientsReply, EnterQueueReply, Envelope, HistoryReply, IdentityReply,
    LeaveQueueReply, LeftChatReply, SentDirectReply, SentRoomReply,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{CallError, Caller, decode};
use crate::app::{Action, Joined, NetEvent, Request};
use crate::state::Token;

/// Who to be on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identify {
    /// Roulette: `enter_queue`.
    Roulette {
        /// Display name; the server's default when absent.
        name: Option<String>,
        /// Interests to be matched on.
        interests: Vec<String>,
    },
    /// Direct messages: `checkin_client`.
    Dm {
        /// The client id.
        client_id: String,
        /// Display name; the client id when absent.
        name: Option<String>,
    },
}

/// What proves our identity to `resume_session` (and to `checkin_client`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// User id or client id.
    pub user_id: String,
    /// The resume token (redacted in `Debug`).
    pub resume_token: Token,
}

impl Identify {
    fn enter_queue_args(&self) -> Value {
        match self {
            Identify::Roulette { name, interests } => {
                let mut args = json!({ "interests": interests });
                if let Some(name) = name {
                    args["display_name"] = json!(name);
                }
                args
            }
            Identify::Dm { .. } => json!({}),
        }
    }

    /// The client id, in dm mode.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Identify::Roulette { .. } => None,
            Identify::Dm { client_id, .. } => Some(client_id),
        }
    }

    fn checkin_args(&self, token: Option<&Token>) -> Value {
        match self {
            Identify::Roulette { .. } => json!({}),
            Identify::Dm { client_id, name } => {
                let mut args = json!({ "client_id": client_id });
                if let Some(name) = name {
                    args["name"] = json!(name);
                }
                if let Some(token) = token {
                    args["resume_token"] = json!(token.expose());
                }
                args
            }
        }
    }

    /// Binds the identity: `enter_queue` (or, when the session already has its roulette
    /// identity, queues it) or `checkin_client`, in dm mode with `token` when we have
    /// one for the id. Returns the reply and the credentials to keep: the new token when
    /// the reply has one, else `token`.
    pub async fn run(
        &self,
        caller: &Caller,
        token: Option<&Token>,
    ) -> Result<(Joined, Option<Credentials>), CallError> {
        match self {
            Identify::Roulette { .. } => {
                let reply: EnterQueueReply = caller.call_as("enter_queue", self.enter_queue_args()).await?;
                let credentials = reply.resume_token.as_ref().map(|t| Credentials {
                    user_id: reply.user_id.to_string(),
                    resume_token: Token::new(t.to_string()),
                });
                Ok((Joined::Roulette(reply), credentials))
            }
            Identify::Dm { .. } => {
                let reply: CheckedInReply =
                    caller.call_as("checkin_client", self.checkin_args(token)).await?;
                let resume_token = match (&reply.resume_token, token) {
                    (Some(new), _) => Some(Token::new(new.to_string())),
                    (None, given) => given.cloned(),
                };
                let credentials = resume_token
                    .map(|resume_token| Credentials { user_id: reply.client_id.to_string(), resume_token });
                Ok((Joined::Dm(reply), credentials))
            }
        }
    }
}

/// `resume_session`.
pub async fn resume(caller: &Caller, credentials: &Credentials) -> Result<IdentityReply, CallError> {
    let args = json!({ "user_id": credentials.user_id, "resume_token": credentials.resume_token.expose() });
    caller.call_as("resume_session", args).await
}

/// A `wait_for_events` result. Every field is defaulted so that a shortened reply (for
/// example when the server stops waiting because it shuts down) still decodes.
#[derive(Debug, Default, Deserialize)]
pub struct Poll {
    /// The events as JSON: decoded one by one so an unknown event type cannot hide the
    /// known ones.
    #[serde(default)]
    pub events: Vec<Value>,
    /// The newest seq the server has for us.
    #[serde(default)]
    pub last_seq: u64,
    /// Unacknowledged events left, including those returned.
    #[serde(default)]
    pub pending: usize,
    /// Events dropped for overflow since the previous poll.
    #[serde(default)]
    pub evicted: u64,
}

impl Poll {
    /// The events with their seqs (`None` for an event this client cannot read, so the
    /// cursor still moves past it), and the seq up to which the poll is complete.
    pub fn split(self) -> (Vec<(u64, Option<Envelope>)>, u64) {
        let truncated = self.pending > self.events.len();
        let items: Vec<(u64, Option<Envelope>)> = self
            .events
            .into_iter()
            .filter_map(|v| {
                let seq = v.get("seq").and_then(Value::as_u64)?;
                Some((seq, serde_json::from_value(v).ok()))
            })
            .collect();
        let complete =
            if truncated { items.iter().map(|(s, _)| *s).max().unwrap_or(0) } else { self.last_seq };
        (items, complete)
    }
}

/// `wait_for_events` after `cursor`, waiting up to `wait_secs` on the server.
pub async fn poll(
    caller: &Caller,
    cursor: u64,
    wait_secs: u64,
    limit: std::time::Duration,
) -> Result<Poll, CallError> {
    let args = json!({ "after_seq": cursor, "timeout": wait_secs });
    decode(caller.call_within("wait_for_events", args, limit).await?)
}

/// Performs one action. `Ok(None)` means nothing to report (`Quit` is the worker's);
/// an error names the request it answers (`None` for a typing update).
pub async fn perform(
    caller: &Caller,
    identify: &Identify,
    action: Action,
) -> Result<Option<NetEvent>, (Option<Request>, CallError)> {
    let on = |request: Request| move |e: CallError| (Some(request), e);
    let event = match action {
        Action::SendRoom { room_id, text } => {
            let args = json!({ "room_id": room_id, "message": text });
            let reply: SentRoomReply =
                caller.call_as("send_message", args).await.map_err(on(Request::Send))?;
            NetEvent::SentRoom { text, reply }
        }
        Action::SendDirect { to, text } => {
            let args = json!({ "recipient_id": to, "message": text });
            let reply: SentDirectReply =
                caller.call_as("send_message", args).await.map_err(on(Request::Send))?;
            NetEvent::SentDirect { text, reply }
        }
        Action::SetTyping { room_id, typing } => {
            // Best effort: a refused typing update is not worth a line in the scrollback.
            match caller.call("set_typing", json!({ "room_id": room_id, "typing": typing })).await {
                Err(e @ CallError::Transport(_)) => return Err((None, e)),
                _ => return Ok(None),
            }
        }
        Action::SetDirectTyping { to, typing } => {
            // Best effort, as above.
            match caller.call("set_typing", json!({ "recipient_id": to, "typing": typing })).await {
                Err(e @ CallError::Transport(_)) => return Err((None, e)),
                _ => return Ok(None),
            }
        }
        Action::LeaveChat { room_id, requeue } => {
            let args = json!({ "room_id": room_id, "requeue": requeue });
            let reply: LeftChatReply =
                caller.call_as("leave_chat", args).await.map_err(on(Request::LeaveChat))?;
            NetEvent::LeftChat(reply)
        }
        Action::EnterQueue => {
            let reply: EnterQueueReply = caller
                .call_as("enter_queue", identify.enter_queue_args())
                .await
                .map_err(on(Request::EnterQueue))?;
            NetEvent::Queued(reply)
        }
        Action::LeaveQueue => {
            let reply: LeaveQueueReply =
                caller.call_as("leave_queue", json!({})).await.map_err(on(Request::LeaveQueue))?;
            NetEvent::LeftQueue(reply)
        }
        Action::Block { room_id, reason } => {
            let mut args = json!({ "room_id": room_id });
            if let Some(reason) = reason {
                args["reason"] = json!(reason);
            }
            let reply: BlockedReply =
                caller.call_as("block_partner", args).await.map_err(on(Request::Block))?;
            NetEvent::Blocked(reply)
        }
        Action::History { room_id } => {
            let reply: HistoryReply = caller
                .call_as("get_history", json!({ "room_id": room_id }))
                .await
                .map_err(on(Request::History))?;
            NetEvent::History(reply)
        }
        Action::ListClients { quiet } => {
            let reply: ClientsReply =
                caller.call_as("list_clients", json!({})).await.map_err(on(Request::ListClients))?;
            NetEvent::Clients { reply, quiet }
        }
        Action::RefreshQueue => {
            match caller.call_as::<EnterQueueReply>("enter_queue", identify.enter_queue_args()).await {
                Ok(reply) => NetEvent::QueueRefreshed(reply),
                Err(e @ CallError::Transport(_)) => return Err((None, e)),
                Err(_) => return Ok(None),
            }
        }
        Action::Quit => return Ok(None),
    };
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_replies_decode_leniently() {
        let poll: Poll = decode(json!({
            "events": [
                {"seq": 4, "type": "partner.typing", "room_id": "r_1", "typing": true},
                {"seq": 5, "type": "something.new", "x": 1},
                {"no_seq": true}
            ],
            "last_seq": 5, "pending": 2, "evicted": 0, "timed_out": false, "pending_events": 2
        }))
        .expect("decodes");
        let (items, complete) = poll.split();
        assert_eq!(items.len(), 2);
        assert!(items[0].1.is_some());
        assert_eq!(items[1], (5, None), "unknown types keep their seq");
        assert_eq!(complete, 5);
        let short: Poll =
            decode(json!({"events": [], "last_seq": 3, "pending": 0, "timed_out": true})).expect("decodes");
        assert_eq!(short.split().1, 3);
    }

    #[test]
    fn a_cut_short_poll_is_complete_only_up_to_its_last_event() {
        let poll = Poll {
            events: vec![json!({"seq": 1, "type": "partner.typing", "room_id": "r", "typing": false})],
            last_seq: 9,
            pending: 5,
            evicted: 0,
        };
        assert_eq!(poll.split().1, 1);
    }

    #[test]
    fn enter_queue_sends_name_and_interests() {
        let identify = Identify::Roulette { name: Some("Ann".into()), interests: vec!["rust".into()] };
        assert_eq!(identify.enter_queue_args(), json!({"display_name": "Ann", "interests": ["rust"]}));
        let anonymous = Identify::Roulette { name: None, interests: vec![] };
        assert_eq!(anonymous.enter_queue_args(), json!({"interests": []}));
    }

    #[test]
    fn checkin_passes_the_saved_token_when_there_is_one() {
        let identify = Identify::Dm { client_id: "alice".into(), name: Some("Alice".into()) };
        assert_eq!(identify.checkin_args(None), json!({"client_id": "alice", "name": "Alice"}));
        assert_eq!(
            identify.checkin_args(Some(&Token::new("rt_1"))),
            json!({"client_id": "alice", "name": "Alice", "resume_token": "rt_1"})
        );
    }
}
