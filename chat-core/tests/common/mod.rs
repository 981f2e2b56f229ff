//! A small driver around `Chat` for tests: a clock, named sessions, and a transcript
//! of every command, reply and pushed event as JSON.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use chat_core::{
    Chat, ChatError, Command, Config, Hold, Limits, Outbound, Reply, SessionEnd, SessionId, Time,
};
use serde_json::{Value, json};

/// 2024-01-01T12:00:00Z, so snapshots read naturally.
pub const START: u64 = 1_704_110_400_000;

pub struct Driver {
    pub chat: Chat,
    pub now: Time,
    pub sessions: BTreeMap<String, SessionId>,
    pub transcript: Vec<Value>,
    /// Every outbound event drained so far, in order.
    pub pushed: Vec<Outbound>,
}

impl Driver {
    pub fn new(limits: Limits) -> Self {
        Driver::with_seed([42; 32], limits)
    }

    pub fn with_seed(seed: [u8; 32], limits: Limits) -> Self {
        Driver::with_config(Config { seed, limits, registered: Vec::new() })
    }

    pub fn with_config(config: Config) -> Self {
        Driver {
            chat: Chat::new(config),
            now: Time::from_millis(START),
            sessions: BTreeMap::new(),
            transcript: Vec::new(),
            pushed: Vec::new(),
        }
    }

    /// Opens a session for `name` whose client holds a stream open (as MCP clients with
    /// a GET stream do), so it stays live until [`Driver::drop_stream`].
    pub fn open(&mut self, name: &str) -> SessionId {
        let s = self.open_bare(name);
        self.chat.hold(self.now, s, Hold::Stream);
        s
    }

    /// Opens a session for `name` that holds nothing (a tools-only client).
    pub fn open_bare(&mut self, name: &str) -> SessionId {
        let s = self.chat.open_session(self.now);
        self.sessions.insert(name.to_string(), s);
        self.transcript.push(json!({ "open": name }));
        s
    }

    /// `who`'s stream breaks.
    pub fn drop_stream(&mut self, who: &str) {
        let session = self.session(who);
        self.chat.release(self.now, session, Hold::Stream);
        self.transcript.push(json!({ "stream_dropped": who }));
        self.drain();
    }

    /// `who`'s client opens a stream again.
    pub fn open_stream(&mut self, who: &str) {
        let session = self.session(who);
        self.chat.hold(self.now, session, Hold::Stream);
        self.transcript.push(json!({ "stream_opened": who }));
        self.drain();
    }

    /// `who` checks in once on a session of its own and leaves (so mail to it is held);
    /// returns its resume token.
    pub fn known_offline(&mut self, who: &str) -> String {
        let name = format!("{who}@first");
        self.open(&name);
        let token = self.ok(&name, checkin(who))["resume_token"].as_str().expect("token").to_string();
        self.close(&name, SessionEnd::Closed);
        token
    }

    /// Sessions the core ended by itself since the last call.
    pub fn expired(&mut self) -> Vec<SessionId> {
        std::iter::from_fn(|| self.chat.poll_expired()).collect()
    }

    pub fn session(&self, name: &str) -> SessionId {
        self.sessions[name]
    }

    /// Runs a command as `who` and records it with its outcome and any pushed events.
    pub fn run(&mut self, who: &str, command: Command) -> Result<Reply, ChatError> {
        let session = self.session(who);
        let result = self.chat.handle(self.now, session, command.clone());
        let outcome = match &result {
            Ok(reply) => json!({ "ok": reply }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        self.transcript.push(json!({ "as": who, "do": command, "got": outcome }));
        self.drain();
        result
    }

    /// Like `run` but the command must succeed; returns the reply as JSON.
    pub fn ok(&mut self, who: &str, command: Command) -> Value {
        match self.run(who, command) {
            Ok(reply) => serde_json::to_value(reply).expect("reply serializes"),
            Err(e) => panic!("{who}: unexpected error: {e}"),
        }
    }

    /// Like `run` but the command must fail; returns the error.
    pub fn err(&mut self, who: &str, command: Command) -> ChatError {
        match self.run(who, command) {
            Ok(reply) => panic!("{who}: expected an error, got {reply:?}"),
            Err(e) => e,
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.plus(d);
        self.chat.tick(self.now);
        self.transcript.push(json!({ "advance_ms": d.as_millis() as u64 }));
        self.drain();
    }

    pub fn close(&mut self, who: &str, how: SessionEnd) {
        let session = self.session(who);
        self.chat.session_closed(self.now, session, how);
        self.transcript.push(json!({ "close": who, "how": how }));
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.chat.poll_outbound() {
            let to = self.sessions.iter().find(|(_, s)| **s == out.session).map(|(n, _)| n.clone());
            self.transcript.push(
                json!({ "push_to": to, "method": out.envelope.event.method(), "params": out.envelope }),
            );
            self.pushed.push(out);
        }
    }

    /// Events pushed to `who`'s session so far, as JSON params.
    pub fn pushed_to(&self, who: &str) -> Vec<Value> {
        let s = self.session(who);
        self.pushed
            .iter()
            .filter(|o| o.session == s)
            .map(|o| serde_json::to_value(&o.envelope).expect("envelope serializes"))
            .collect()
    }

    /// The transcript as pretty JSON lines, for snapshots.
    pub fn transcript_text(&self) -> String {
        self.transcript.iter().map(|v| serde_json::to_string(v).expect("json")).collect::<Vec<_>>().join("\n")
    }
}

pub fn enter(user: &str) -> Command {
    Command::EnterQueue {
        user_id: Some(user.into()),
        display_name: None,
        interests: vec![],
        resume_token: None,
    }
}

pub fn enter_named(user: &str, name: &str, interests: &[&str]) -> Command {
    Command::EnterQueue {
        user_id: Some(user.into()),
        display_name: Some(name.into()),
        interests: interests.iter().map(|s| s.to_string()).collect(),
        resume_token: None,
    }
}

pub fn say(room: &str, text: &str) -> Command {
    Command::SendRoom { room_id: room.into(), message: text.into(), client_message_id: None }
}

pub fn dm(to: &str, text: &str) -> Command {
    Command::SendDirect { recipient_id: to.into(), message: text.into(), client_message_id: None }
}

pub fn checkin(id: &str) -> Command {
    Command::Checkin { client_id: id.into(), name: None, capabilities: vec![], resume_token: None }
}

/// The room id from an `EnterQueue` reply that matched.
pub fn room_of(reply: &Value) -> String {
    reply["room_id"].as_str().expect("matched reply has room_id").to_string()
}
