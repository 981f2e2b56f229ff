//! `chat-cli` end to end: the real server binary and real `chat-cli --plain --json`
//! child processes, driven through their stdin and read from their stdout, one JSON
//! object per line. Every wait is bounded, so a broken client fails instead of hanging.
//!
//! Every CLI keeps its identities in its own temporary state directory
//! (`MCP_CHAT_STATE_DIR`), never in the real home; tests that restart a client pass the
//! same directory again.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tests::{NetworkCut, STEP, ServerProcess, binary, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// A running `chat-cli --plain --json`.
struct Cli {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Everything read so far, for failure messages.
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    /// The state directory when the CLI has its own (removed when the CLI is dropped).
    _own_state: Option<TempDir>,
}

/// A fresh, empty state directory.
fn state_dir() -> TempDir {
    tempfile::Builder::new().prefix("chat-cli-state-").tempdir().expect("create a state directory")
}

impl Cli {
    /// Starts `chat-cli --plain --json --server <url> <args>` with a state directory of
    /// its own.
    async fn start(name: &str, url: &str, args: &[&str]) -> Cli {
        let state = state_dir();
        let mut cli = Cli::start_in(name, url, args, state.path()).await;
        cli._own_state = Some(state);
        cli
    }

    /// Starts `chat-cli --plain --json --server <url> <args>` keeping its identities in
    /// `state` (`MCP_CHAT_STATE_DIR`).
    async fn start_in(name: &str, url: &str, args: &[&str], state: &Path) -> Cli {
        Cli::start_with(name, url, args, state, true).await
    }

    /// Starts `chat-cli --plain` without `--json`: its text lines arrive as JSON strings.
    async fn start_text(name: &str, url: &str, args: &[&str]) -> Cli {
        let state = state_dir();
        let mut cli = Cli::start_with(name, url, args, state.path(), false).await;
        cli._own_state = Some(state);
        cli
    }

    async fn start_with(name: &str, url: &str, args: &[&str], state: &Path, json: bool) -> Cli {
        let path = tokio::task::spawn_blocking(|| binary("chat-cli")).await.expect("find chat-cli");
        let mut child = Command::new(path)
            .arg("--plain")
            .args(json.then_some("--json"))
            .args(["--server", url])
            .args(args)
            .env_remove("MCP_CHAT_URL")
            .env_remove("MCP_CHAT_AUTH_TOKEN")
            .env("MCP_CHAT_STATE_DIR", state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chat-cli");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = err_pipe.read_to_string(&mut text).await;
            sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_str(&text);
        });
        let stdin = child.stdin.take();
        Cli { name: name.to_owned(), child, stdin, lines, seen: Vec::new(), stderr, _own_state: None }
    }

    /// Types one line.
    async fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        within(STEP, "write to chat-cli", async {
            stdin.write_all(format!("{line}\n").as_bytes()).await.expect("write line");
            stdin.flush().await.expect("flush");
        })
        .await;
    }

    /// Closes stdin: plain mode quits at the end of its input.
    fn end_input(&mut self) {
        self.stdin = None;
    }

    /// The next line of type `kind` that satisfies `pred`; earlier lines are skipped.
    async fn expect_where(&mut self, kind: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if line["type"] == kind && pred(&line) {
                        return line;
                    }
                }
                Ok(None) => {
                    panic!("{}: output ended while waiting for {kind}; seen:\n{}", self.name, self.log())
                }
                Err(_) => panic!("{}: no {kind} within {limit:?}; seen:\n{}", self.name, self.log()),
            }
        }
    }

    async fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, STEP, |_| true).await
    }

    /// Fails if a line of type `kind` arrives within `window`.
    async fn expect_none(&mut self, kind: &str, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            self.seen.push(line.clone());
            assert_ne!(line["type"], kind, "{}: unexpected {kind}; seen:\n{}", self.name, self.log());
        }
    }

    async fn exit(&mut self, limit: Duration) -> ExitStatus {
        within(limit, &format!("{} exits", self.name), self.child.wait()).await.expect("wait for chat-cli")
    }

    /// Kills the process with SIGKILL, as a crash would: no goodbye to the server.
    async fn crash(&mut self) {
        self.child.start_kill().expect("kill chat-cli");
        let _ = self.exit(STEP).await;
    }

    /// The next text line (plain mode without `--json`) that satisfies `pred`.
    async fn expect_text(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if let Some(text) = line.as_str()
                        && pred(text)
                    {
                        return text.to_owned();
                    }
                }
                _ => panic!("{}: no such line; seen:\n{}", self.name, self.log()),
            }
        }
    }

    /// Everything read so far, in order, as `type` names (text lines as `text`).
    fn kinds_seen(&self) -> Vec<String> {
        self.seen.iter().map(|v| v["type"].as_str().unwrap_or("text").to_owned()).collect()
    }

    /// What the CLI wrote to stderr so far.
    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// stderr once the process has exited (its reader finishes shortly after).
    async fn stderr_after_exit(&self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let text = self.stderr_text();
            if !text.is_empty() || tokio::time::Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if any `error` line was seen so far.
    fn assert_no_errors(&self) {
        assert!(
            !self.seen.iter().any(|line| line["type"] == "error"),
            "{}: unexpected error; seen:\n{}",
            self.name,
            self.log()
        );
    }

    fn log(&self) -> String {
        let mut log: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        log.push(format!(
            "stderr: {}",
            self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        ));
        log.join("\n")
    }
}

/// Two clients, Ann then Bob, paired in one room. Returns them after both saw `matched`.
async fn pair(server: &ServerProcess) -> (Cli, Cli) {
    pair_at(&server.url, &server.url).await
}

async fn pair_at(ann_url: &str, bob_url: &str) -> (Cli, Cli) {
    let mut ann = Cli::start("ann", ann_url, &["--name", "Ann", "--interests", "rust,music"]).await;
    let connected = ann.expect("connected").await;
    assert_eq!(connected["display_name"], "Ann");
    let waiting = ann.expect("waiting").await;
    assert_eq!(waiting["position"], 1);
    let mut bob = Cli::start("bob", bob_url, &["--name", "Bob", "--interests", "rust"]).await;
    let bob_matched = bob.expect("matched").await;
    let ann_matched = ann.expect("matched").await;
    assert_eq!(ann_matched["room_id"], bob_matched["room_id"]);
    assert_eq!(ann_matched["partner"]["display_name"], "Bob");
    assert_eq!(bob_matched["partner"]["display_name"], "Ann");
    assert_eq!(bob_matched["shared_interests"], serde_json::json!(["rust"]));
    (ann, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clis_chat_both_ways_and_next_tells_the_partner() {
    let server = ServerProcess::start(&[]).await;
    let (mut ann, mut bob) = pair(&server).await;

    ann.say("hello from Ann").await;
    let got = bob.expect("message").await;
    assert_eq!(
        (got["from_name"].as_str(), got["text"].as_str(), got["mine"].as_bool()),
        (Some("Ann"), Some("hello from Ann"), Some(false))
    );
    let echo = ann.expect("message").await;
    assert_eq!((echo["text"].as_str(), echo["mine"].as_bool()), (Some("hello from Ann"), Some(true)));

    bob.say("hi Ann, Bob here").await;
    let got = ann.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!((got["from_name"].as_str(), got["text"].as_str()), (Some("Bob"), Some("hi Ann, Bob here")));

    ann.say("/next").await;
    let left = bob.expect("partner_left").await;
    assert_eq!((left["name"].as_str(), left["reason"].as_str()), (Some("Ann"), Some("left")));
    let ann_left = ann.expect("left").await;
    assert_eq!(ann_left["requeued"], true);
    ann.expect("waiting").await;

    bob.say("anyone?").await;
    let error = bob.expect("error").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("chat has ended")), "{error}");

    bob.say("/quit").await;
    bob.expect("closed").await;
    assert!(bob.exit(STEP).await.success());
    ann.end_input();
    ann.expect("closed").await;
    assert!(ann.exit(STEP).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_shows_the_server_error_and_the_chat_goes_on() {
    let server = ServerProcess::start(&["--max-message-bytes", "1000"]).await;
    let (mut ann, mut bob) = pair(&server).await;

    ann.say(&"x".repeat(1500)).await;
    let error = ann.expect("error").await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("not sent: ") && message.contains("1000 bytes"), "{message}");

    ann.say("a normal one").await;
    let got = bob.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!(got["text"], "a normal one", "the oversized message never arrived: {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitting_tells_the_partner_at_once() {
    let server = ServerProcess::start(&[]).await;
    let (mut ann, mut bob) = pair(&server).await;
    ann.end_input();
    // "left" (not "timeout"): the session was closed on purpose (HTTP DELETE), so the
    // server did not wait for the reconnect grace.
    let left = bob.expect_where("partner_left", Duration::from_secs(3), |_| true).await;
    assert_eq!(left["reason"], "left");
    assert!(ann.exit(STEP).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_client_still_says_goodbye() {
    let server = ServerProcess::start(&[]).await;
    let (mut ann, mut bob) = pair(&server).await;
    let pid = ann.child.id().expect("ann is running").to_string();
    let status = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
    assert!(status.success());
    let left = bob.expect_where("partner_left", Duration::from_secs(3), |_| true).await;
    assert_eq!(left["reason"], "left");
    ann.expect("closed").await;
    assert!(ann.exit(STEP).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_between_named_clients() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = Cli::start("alice", &server.url, &["dm", "--as", "alice", "--name", "Alice"]).await;
    alice.expect("connected").await;
    let mut bob = Cli::start("bob", &server.url, &["dm", "--as", "bob"]).await;
    bob.expect("connected").await;

    alice.say("/who").await;
    let clients = alice.expect("clients").await;
    let ids: Vec<&str> =
        clients["clients"].as_array().into_iter().flatten().filter_map(|c| c["client_id"].as_str()).collect();
    assert_eq!(ids, ["alice", "bob"]);

    alice.say("/to bob are you free?").await;
    let got = bob.expect("message").await;
    assert_eq!((got["from"].as_str(), got["text"].as_str()), (Some("alice"), Some("are you free?")));
    assert!(got.get("room_id").is_none(), "a direct message has no room: {got}");
    let echo = alice.expect_where("message", STEP, |m| m["mine"] == true).await;
    assert_eq!(echo["to"], "bob");

    // Bob answers without /to: the first sender became his recipient.
    bob.say("yes, go ahead").await;
    let got = alice.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!((got["from"].as_str(), got["text"].as_str()), (Some("bob"), Some("yes, go ahead")));

    // Mail only goes to clients that exist: an id nobody checked in as is refused.
    alice.say("/to carol see you tomorrow").await;
    let refused = alice.expect("error").await;
    assert!(refused["message"].as_str().is_some_and(|t| t.contains("carol")), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_peer_typing_shows_as_a_typing_line() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = Cli::start("bob", &server.url, &["dm", "--as", "bob"]).await;
    bob.expect("connected").await;
    // An agent on the MCP tools writes to bob and shows that it is typing.
    let alice = server.client().await;
    alice.ok("checkin_client", json!({"client_id": "alice", "name": "Alice"})).await;
    alice.ok("set_typing", json!({"recipient_id": "bob", "typing": true})).await;
    let typing = bob.expect("typing").await;
    assert_eq!(
        (typing["from"].as_str(), typing["name"].as_str(), typing["typing"].as_bool()),
        (Some("alice"), Some("Alice"), Some(true)),
        "{typing}"
    );
    assert!(typing.get("room_id").is_none(), "a direct message has no room: {typing}");
    alice.ok("set_typing", json!({"recipient_id": "bob", "typing": false})).await;
    let stopped = bob.expect("typing").await;
    assert_eq!((stopped["from"].as_str(), stopped["typing"].as_bool()), (Some("alice"), Some(false)));
    bob.assert_no_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_drop_is_survived_by_resuming_the_session() {
    let server = ServerProcess::start(&[]).await;
    let proxy = NetworkCut::start(server.addr).await;
    let (mut ann, mut bob) = pair_at(&proxy.url(), &server.url).await;

    proxy.cut();
    let lost = ann.expect_where("reconnecting", STEP, |_| true).await;
    assert_eq!(lost["attempt"], 1);
    // Bob writes while Ann is away; it waits in her inbox.
    bob.say("did you drop?").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();

    let back = ann.expect_where("reconnected", Duration::from_secs(20), |_| true).await;
    assert_eq!(back["resumed"], true, "same identity and room: {back}");
    let got = ann.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!(got["text"], "did you drop?");

    ann.say("back again").await;
    let got = bob.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!(got["text"], "back again");
    bob.expect_none("partner_left", Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_on_a_durable_store_is_ridden_through() {
    let dir = tempfile::Builder::new().prefix("mcp-chat-store-").tempdir().expect("temp dir");
    let store = format!("sqlite:{}", dir.path().join("chat.db").display());
    let mut server = ServerProcess::start(&["--store", &store]).await;
    let (mut ann, mut bob) = pair(&server).await;
    server.kill().await;
    server.restart(&["--store", &store]).await;

    // Nobody typed anything: both keep their chat and it goes on both ways.
    ann.say("still there?").await;
    let got = bob.expect_where("message", Duration::from_secs(20), |m| m["mine"] == false).await;
    assert_eq!(got["text"], "still there?");
    bob.say("yes").await;
    let got = ann.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!(got["text"], "yes");
    ann.expect_none("partner_left", Duration::from_millis(300)).await;
    bob.expect_none("partner_left", Duration::from_millis(10)).await;
    ann.assert_no_errors();
    bob.assert_no_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_is_a_clear_error() {
    let server = ServerProcess::start(&["--auth-token", "s3cret"]).await;
    let mut anonymous = Cli::start("anonymous", &server.url, &[]).await;
    let status = anonymous.exit(STEP).await;
    assert_eq!(status.code(), Some(1));
    let error = anonymous.expect("error").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("--auth-token")), "{error}");

    let mut member = Cli::start("member", &server.url, &["--auth-token", "s3cret"]).await;
    member.expect("waiting").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partner_sees_a_dropped_connection_and_the_return() {
    // A session without its streams is lost after 300 ms; the room then waits 20 s.
    let server = ServerProcess::start(&["--stream-grace", "300ms", "--reconnect-grace", "20s"]).await;
    let proxy = NetworkCut::start(server.addr).await;
    let (mut ann, mut bob) = pair_at(&proxy.url(), &server.url).await;

    proxy.cut();
    let away = bob.expect_where("partner_reconnecting", STEP, |_| true).await;
    assert_eq!(away["name"], "Ann", "{away}");
    assert!(away["reconnect_by"].as_str().is_some_and(|t| t.ends_with('Z')), "{away}");
    bob.say("take your time").await;
    bob.expect_where("message", STEP, |m| m["mine"] == true).await;
    proxy.restore();

    // Ann's client may notice the cut (and print `reconnected`) or not: its stream comes
    // back on the same session either way. What must happen is on Bob's side, and that
    // nothing is lost.
    let returned = bob.expect_where("partner_reconnected", Duration::from_secs(20), |_| true).await;
    assert_eq!((&returned["name"], &returned["room_id"]), (&away["name"], &away["room_id"]));
    let got = ann.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!(got["text"], "take your time", "sent while she was away, delivered when she came back");
    bob.expect_none("partner_left", Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_a_partner_who_never_returns_are_reported_undelivered() {
    let server = ServerProcess::start(&["--stream-grace", "300ms", "--reconnect-grace", "1500ms"]).await;
    let (mut ann, mut bob) = pair(&server).await;
    bob.say("before the crash").await;
    ann.expect_where("message", STEP, |m| m["mine"] == false).await;

    ann.child.start_kill().expect("kill ann");
    bob.expect_where("partner_reconnecting", STEP, |_| true).await;
    let mut sent = Vec::new();
    for text in ["are you there?", "hello?"] {
        bob.say(text).await;
        let echo = bob.expect_where("message", STEP, |m| m["mine"] == true && m["text"] == text).await;
        sent.push(serde_json::json!({"message_id": echo["message_id"], "text": text}));
    }

    let left = bob.expect_where("partner_left", STEP, |_| true).await;
    assert_eq!(left["reason"], "timeout", "{left}");
    assert_eq!(left["undelivered"], Value::Array(sent), "only what was sent after she was lost: {left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_client_that_quit_comes_back_as_itself_and_gets_its_mail() {
    let server = ServerProcess::start(&[]).await;
    let state = state_dir();
    let mut carol = Cli::start_in("carol", &server.url, &["dm", "--as", "carol"], state.path()).await;
    let connected = carol.expect("connected").await;
    assert_eq!(connected["client_id"], "carol", "{connected}");
    assert!(connected.get("user_id").is_none(), "a client id is not a user id: {connected}");
    carol.say("/quit").await;
    carol.expect("closed").await;
    assert!(carol.exit(STEP).await.success());

    // carol exists now (offline), so mail to her is accepted and waits in her mailbox.
    let mut alice = Cli::start("alice", &server.url, &["dm", "--as", "alice"]).await;
    alice.expect("connected").await;
    alice.say("/to carol welcome back").await;
    let echo = alice.expect_where("message", STEP, |m| m["mine"] == true).await;
    assert_eq!((echo["to"].as_str(), echo["text"].as_str()), (Some("carol"), Some("welcome back")));
    alice.assert_no_errors();

    // The same state directory: carol's CLI resumes her identity with the stored token.
    let mut carol = Cli::start_in("carol again", &server.url, &["dm", "--as", "carol"], state.path()).await;
    let connected = carol.expect("connected").await;
    assert_eq!(connected["client_id"], "carol", "{connected}");
    let got = carol.expect("message").await;
    assert_eq!((got["from"].as_str(), got["text"].as_str()), (Some("alice"), Some("welcome back")));
    carol.assert_no_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dm_client_takes_its_identity_back_at_once() {
    // A long reconnect grace: the server still counts the killed session as
    // reconnecting when the new process starts. The token must win at once.
    let server = ServerProcess::start(&["--reconnect-grace", "60s"]).await;
    let state = state_dir();
    let mut crashy = Cli::start_in("crashy", &server.url, &["dm", "--as", "crashy"], state.path()).await;
    crashy.expect("connected").await;
    crashy.crash().await;

    let mut crashy =
        Cli::start_in("crashy again", &server.url, &["dm", "--as", "crashy"], state.path()).await;
    let connected = crashy.expect("connected").await;
    assert_eq!(connected["client_id"], "crashy", "{connected}");
    assert_eq!(connected["restored"], true, "taken back with the stored token: {connected}");

    // It really is crashy: mail to crashy reaches the new process.
    let mut bob = Cli::start("bob", &server.url, &["dm", "--as", "bob"]).await;
    bob.expect("connected").await;
    bob.say("/to crashy still there?").await;
    let got = crashy.expect("message").await;
    assert_eq!((got["from"].as_str(), got["text"].as_str()), (Some("bob"), Some("still there?")));
    crashy.assert_no_errors();
    bob.assert_no_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_roulette_client_comes_back_to_its_chat() {
    let server = ServerProcess::start(&["--reconnect-grace", "60s"]).await;
    let state = state_dir();
    let mut ann = Cli::start_in("ann", &server.url, &["--name", "Ann"], state.path()).await;
    let first = ann.expect("connected").await;
    ann.expect("waiting").await;
    let mut bob = Cli::start("bob", &server.url, &["--name", "Bob"]).await;
    let matched = bob.expect("matched").await;
    ann.expect("matched").await;

    ann.crash().await;
    bob.expect_where("partner_reconnecting", STEP, |_| true).await;
    bob.say("are you back?").await;
    bob.expect_where("message", STEP, |m| m["mine"] == true).await;

    let mut ann = Cli::start_in("ann again", &server.url, &["--name", "Ann"], state.path()).await;
    let again = ann.expect("connected").await;
    assert_eq!(again["user_id"], first["user_id"], "the same user: {again}");
    let room = ann.expect("matched").await;
    assert_eq!(room["room_id"], matched["room_id"], "the same room: {room}");
    let got = ann.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!(got["text"], "are you back?");
    bob.expect_where("partner_reconnected", STEP, |_| true).await;
    ann.say("yes").await;
    let got = bob.expect_where("message", STEP, |m| m["mine"] == false).await;
    assert_eq!(got["text"], "yes");
    ann.assert_no_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_roulette_clients_sharing_a_state_directory_stay_two_people() {
    let server = ServerProcess::start(&[]).await;
    let state = state_dir();
    let mut ann = Cli::start_in("ann", &server.url, &["--name", "Ann"], state.path()).await;
    let ann_id = ann.expect("connected").await["user_id"].clone();
    ann.expect("waiting").await;
    let mut bob = Cli::start_in("bob", &server.url, &["--name", "Bob"], state.path()).await;
    let bob_id = bob.expect("connected").await["user_id"].clone();
    assert_ne!(ann_id, bob_id, "a running client's identity is not taken over");
    let matched = bob.expect("matched").await;
    assert_eq!(matched["partner"]["display_name"], "Ann");
    ann.expect("matched").await;
}

/// The CLI's state file in `dir`, as JSON.
fn saved_state(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("identities.json")).expect("read the state file");
    serde_json::from_str(&text).expect("the state file is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_owned_elsewhere_is_refused_with_what_to_do() {
    let server = ServerProcess::start(&[]).await;
    let mut owner = Cli::start("owner", &server.url, &["dm", "--as", "dora"]).await;
    owner.expect("connected").await;

    // Another machine (another state directory) has no token for dora.
    let elsewhere = state_dir();
    let mut other = Cli::start_in("other", &server.url, &["dm", "--as", "dora"], elsewhere.path()).await;
    assert_eq!(other.exit(STEP).await.code(), Some(1));
    let error = other.expect("error").await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("'dora'") && message.contains("belongs to another owner"), "{message}");
    assert!(message.contains("--as"), "says how to proceed: {message}");
    let file = elsewhere.path().join("identities.json");
    assert!(message.contains(&file.display().to_string()), "names the state file: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_token_the_server_rejects_is_dropped_and_explained() {
    let server = ServerProcess::start(&[]).await;
    let mut owner = Cli::start("owner", &server.url, &["dm", "--as", "erin"]).await;
    owner.expect("connected").await;

    // A token that is not erin's (say, saved before the server was reset and someone
    // else took the id); another id's token in the same file is left alone.
    let state = state_dir();
    let wrong = serde_json::json!({"version": 1, "servers": {server.url.as_str(): {"clients": {
        "erin": {"resume_token": "rt_00000000000000000000000000000000"},
        "frank": {"resume_token": "rt_11111111111111111111111111111111"},
    }}}});
    std::fs::write(state.path().join("identities.json"), wrong.to_string()).expect("write the state file");
    let mut stale = Cli::start_in("stale", &server.url, &["dm", "--as", "erin"], state.path()).await;
    assert_eq!(stale.exit(STEP).await.code(), Some(1));
    let error = stale.expect("error").await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("'erin'") && message.contains("belongs to someone else"), "{message}");
    assert!(message.contains("removed"), "says the token was dropped: {message}");
    assert!(!message.contains("rt_0000"), "never shows a token: {message}");
    let clients = &saved_state(state.path())["servers"][server.url.as_str()]["clients"];
    assert!(clients.get("erin").is_none(), "the stale token is gone: {clients}");
    assert!(clients.get("frank").is_some(), "{clients}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_file_is_a_warning_not_a_failure() {
    let server = ServerProcess::start(&[]).await;
    let state = state_dir();
    std::fs::write(state.path().join("identities.json"), "{ this is not json").expect("write");
    let mut gina = Cli::start_in("gina", &server.url, &["dm", "--as", "gina"], state.path()).await;
    let warning = gina.expect("warning").await;
    assert!(warning["message"].as_str().is_some_and(|m| m.contains("damaged")), "{warning}");
    gina.expect("connected").await;
    // The new token is saved; the damaged file is kept aside.
    let saved = saved_state(state.path());
    assert!(saved["servers"][server.url.as_str()]["clients"]["gina"]["resume_token"].is_string(), "{saved}");
    assert!(state.path().join("identities.json.corrupt").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(state.path().join("identities.json")).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    gina.assert_no_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cli_as_the_same_id_takes_over_and_the_first_says_so() {
    let server = ServerProcess::start(&[]).await;
    let state = state_dir();
    let mut first = Cli::start_in("first", &server.url, &["dm", "--as", "hank"], state.path()).await;
    first.expect("connected").await;
    let mut second = Cli::start_in("second", &server.url, &["dm", "--as", "hank"], state.path()).await;
    let connected = second.expect("connected").await;
    assert_eq!(connected["restored"], true, "{connected}");
    // The first one learns at its next request (here /who) that hank is elsewhere now.
    first.say("/who").await;
    let error = first.expect("error").await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("took 'hank' over"), "{message}");
    assert_eq!(first.exit(STEP).await.code(), Some(1));
    second.assert_no_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_of_several_lines_arrives_whole_and_plain_mode_indents_its_lines() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = Cli::start_text("ann", &server.url, &["--name", "Ann"]).await;
    ann.expect_text(|l| l.contains("waiting for a partner")).await;
    let poet = server.client().await;
    let joined = poet.ok("enter_queue", serde_json::json!({"display_name": "Poet"})).await;
    let room = joined["room_id"].as_str().expect("matched at once").to_owned();
    let text = "roses are red\nviolets are blue\n[12:00:00] * not a notice";
    poet.ok("send_message", serde_json::json!({"room_id": room, "message": text})).await;
    let first = ann.expect_text(|l| l.contains("<Poet> ")).await;
    assert!(first.ends_with("<Poet> roses are red"), "{first}");
    let indent = " ".repeat(first.len() - "roses are red".len());
    let second = ann.expect_text(|_| true).await;
    assert_eq!(second, format!("{indent}violets are blue"), "under the text, not at the margin");
    let third = ann.expect_text(|_| true).await;
    assert_eq!(third, format!("{indent}[12:00:00] * not a notice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_presence_changes_arrive_without_asking() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = Cli::start("alice", &server.url, &["dm", "--as", "alice"]).await;
    alice.expect("connected").await;
    // bob checks in after alice's first list: the next poll (every 5 s) reports him.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut bob = Cli::start("bob", &server.url, &["dm", "--as", "bob"]).await;
    bob.expect("connected").await;
    let online = alice.expect_where("presence", Duration::from_secs(10), |p| p["client_id"] == "bob").await;
    assert_eq!(online["status"], "online", "{online}");
    bob.say("/quit").await;
    bob.expect("closed").await;
    // The send's reply says bob is offline: the dot follows at once, not at the next poll.
    alice.say("/to bob are you gone?").await;
    let offline = alice.expect_where("presence", Duration::from_secs(2), |p| p["client_id"] == "bob").await;
    assert_eq!(offline["status"], "offline", "{offline}");
    assert!(!alice.kinds_seen().contains(&"clients".to_owned()), "never asked with /who");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_ends_at_once_still_connects_first_and_json_stays_machine_readable() {
    let server = ServerProcess::start(&[]).await;
    let mut dora = Cli::start("dora", &server.url, &["dm", "--as", "dora"]).await;
    dora.end_input();
    dora.expect("closed").await;
    assert!(dora.exit(STEP).await.success());
    let stderr = dora.stderr_after_exit().await;
    let kinds = dora.kinds_seen();
    assert_eq!(kinds.first().map(String::as_str), Some("connected"), "connected comes first: {kinds:?}");
    assert!(!kinds.iter().any(|k| k == "info"), "no human info lines on stdout: {kinds:?}");
    assert!(stderr.contains("/to <client_id> picks who to write to"), "hints go to stderr: {stderr}");
    assert!(stderr.contains("closing the session"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_names_the_partner() {
    let server = ServerProcess::start(&[]).await;
    let (mut ann, _bob) = pair(&server).await;
    ann.say("/block rude").await;
    let blocked = ann.expect("blocked").await;
    assert_eq!(blocked["name"], "Bob", "{blocked}");
    assert!(blocked["user_id"].as_str().is_some_and(|id| id.starts_with("u_")), "{blocked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_in_the_queue_learns_that_someone_joined() {
    // No shared interest and a long interest timeout: both wait.
    let server = ServerProcess::start(&["--interest-timeout", "60s"]).await;
    let mut ann = Cli::start("ann", &server.url, &["--name", "Ann", "--interests", "chess"]).await;
    let first = ann.expect("waiting").await;
    assert_eq!((first["position"].as_u64(), first["queue_length"].as_u64()), (Some(1), Some(1)));
    let mut bob = Cli::start("bob", &server.url, &["--name", "Bob", "--interests", "golf"]).await;
    let behind = bob.expect("waiting").await;
    assert_eq!((behind["position"].as_u64(), behind["queue_length"].as_u64()), (Some(2), Some(2)));
    let fresh = ann.expect_where("waiting", Duration::from_secs(12), |_| true).await;
    assert_eq!((fresh["position"].as_u64(), fresh["queue_length"].as_u64()), (Some(1), Some(2)), "{fresh}");
    ann.expect_none("matched", Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_says_why_the_old_partner_does_not_come_back() {
    let server = ServerProcess::start(&[]).await;
    let (mut ann, mut bob) = pair(&server).await;
    ann.say("/next").await;
    ann.expect("waiting").await;
    bob.expect("partner_left").await;
    bob.say("/next").await;
    bob.expect("waiting").await;
    ann.expect_none("matched", Duration::from_millis(500)).await;
    // Notes for people are on stderr (read whole once the client exits).
    for (cli, other) in [(&mut ann, "Bob"), (&mut bob, "Ann")] {
        cli.end_input();
        assert!(cli.exit(STEP).await.success());
        let stderr = cli.stderr_after_exit().await;
        assert!(stderr.contains(&format!("will not be matched with {other} again for a while")), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_in_plain_mode_says_its_lines_keep_their_seconds() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = Cli::start_text("ann", &server.url, &["--name", "Ann"]).await;
    ann.expect_text(|l| l.contains("waiting for a partner")).await;
    ann.say("/time").await;
    let note = ann.expect_text(|l| l.contains("/time")).await;
    assert!(note.contains("plain lines always show seconds"), "{note}");
    let stamp = note.split(']').next().unwrap_or_default();
    assert_eq!(stamp.len(), "[12:00:00".len(), "hh:mm:ss: {note}");
}
