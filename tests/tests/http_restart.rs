//! A restart on a durable store (`--store sqlite:`) is invisible: the real binary is
//! killed (SIGKILL) or stopped (SIGTERM) and started again on the same file and port,
//! while rmcp clients and raw sessions hold on to their `Mcp-Session-Id`s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tests::{RawSession, STEP, ServerProcess, SseEvents, binary, within};

/// A store in a fresh temporary directory, and the server flags for it.
struct Store {
    _dir: TempDir,
    path: PathBuf,
    flag: String,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::Builder::new().prefix("mcp-chat-store-").tempdir().expect("temp dir");
        let path = dir.path().join("chat.db");
        let flag = format!("sqlite:{}", path.display());
        Store { _dir: dir, path, flag }
    }

    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--store", self.flag.as_str()];
        args.extend_from_slice(extra);
        args
    }
}

fn room(v: &Value) -> String {
    v["room_id"].as_str().expect("room_id").to_owned()
}

/// The restart story, by SIGKILL (`crash`) or SIGTERM.
async fn restart_story(crash: bool) {
    let store = Store::new();
    let mut server = ServerProcess::start(&store.args(&[])).await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let room_id = room(&ann.next("chatroom.found", STEP).await);
    bob.next("chatroom.found", STEP).await;
    ann.ok("send_message", json!({"room_id": room_id, "message": "before"})).await;
    assert_eq!(bob.next("message.received", STEP).await["message"], "before");

    // A DM waits in the mailbox of a client that is offline.
    let carol_token = server.known_client("carol").await;
    let dave = server.client().await;
    dave.ok("checkin_client", json!({"client_id": "dave"})).await;
    dave.ok("send_message", json!({"recipient_id": "carol", "message": "kept through a restart"})).await;

    if crash {
        server.kill().await;
    } else {
        let status = server.terminate(Duration::from_secs(15)).await;
        assert!(status.success(), "a stopped server exits 0: {status:?}");
    }
    server.restart(&store.args(&[])).await;

    // The same sessions go on: the room is still there and messages flow both ways.
    ann.ok_eventually("send_message", json!({"room_id": room_id, "message": "after"})).await;
    assert_eq!(bob.next("message.received", STEP).await["message"], "after");
    bob.ok("send_message", json!({"room_id": room_id, "message": "still here"})).await;
    assert_eq!(ann.next("message.received", STEP).await["message"], "still here");
    // Nobody was told the partner left, timed out, or that the server shut down.
    ann.none("partner.disconnected", Duration::from_millis(300)).await;
    bob.none("partner.disconnected", Duration::from_millis(10)).await;
    let identity = ann.ok("get_my_identity", json!({})).await;
    assert_eq!(identity["state"], "chatting", "{identity}");

    // The offline client's mail survived, and its resume token still works.
    let carol = server.client().await;
    carol.ok("checkin_client", json!({"client_id": "carol", "resume_token": carol_token})).await;
    let mail = carol.ok("get_messages", json!({})).await;
    assert_eq!(mail["messages"][0]["message"], "kept through a restart", "{mail}");
    assert_eq!(mail["messages"][0]["from"], "dave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_comes_back_with_its_sessions_rooms_and_mail() {
    restart_story(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_comes_back_and_partners_were_told_nothing() {
    restart_story(false).await;
}

/// A raw session's next event of `method`, with its SSE id.
async fn next_of(events: &mut SseEvents, method: &str) -> (String, Value) {
    let (id, value) = events.next_method(method).await;
    (id.expect("an event id"), value["params"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_across_a_restart_without_gap_or_duplicate() {
    let store = Store::new();
    let mut server = ServerProcess::start(&store.args(&["--stream-grace", "30s"])).await;
    let mut ann = RawSession::open(&server.url, None).await;
    let mut bob = RawSession::open(&server.url, None).await;
    let mut ann_events = SseEvents::new(ann.open_stream().await);
    ann.call("enter_queue", json!({})).await;
    bob.call("enter_queue", json!({})).await;
    let (found_id, found) = next_of(&mut ann_events, "chatroom.found").await;
    let room_id = room(&found);
    // The event id is the event's seq, not a count of this process.
    assert_eq!(found_id, found["seq"].to_string(), "{found}");
    drop(ann_events);

    // Two messages while Ann's stream is closed, then the crash, then one more.
    for text in ["one", "two"] {
        bob.call("send_message", json!({"room_id": room_id, "message": text})).await;
    }
    server.kill().await;
    server.restart(&store.args(&["--stream-grace", "30s"])).await;
    let sent = within(STEP, "the restarted server answers", async {
        loop {
            let reply = bob.call("send_message", json!({"room_id": room_id, "message": "three"})).await;
            if reply["result"]["isError"] != true {
                break reply;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(sent.get("result").is_some(), "{sent}");

    // Ann resumes from the last id she saw: every message once, in order.
    let mut ann_events = SseEvents::new(ann.open_stream_after(Some(&found_id)).await);
    let mut texts = Vec::new();
    let mut ids = Vec::new();
    while texts.len() < 3 {
        let (id, message) = next_of(&mut ann_events, "message.received").await;
        texts.push(message["message"].as_str().expect("text").to_owned());
        ids.push(message["seq"].as_u64().expect("seq"));
        assert_eq!(id, message["seq"].to_string());
    }
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let more = ann_events.try_next(Duration::from_millis(500)).await;
    assert!(
        more.as_ref().is_none_or(|(_, v)| v["method"] != "message.received"),
        "a duplicate after the resume: {more:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_expires_while_the_server_is_down_is_reported_after() {
    let store = Store::new();
    let args = ["--message-ttl", "2s"];
    let mut server = ServerProcess::start(&store.args(&args)).await;
    server.known_client("carol").await;
    let dave = server.client().await;
    dave.ok("checkin_client", json!({"client_id": "dave"})).await;
    let sent = dave.ok("send_message", json!({"recipient_id": "carol", "message": "nobody reads me"})).await;
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success());
    // Down for longer than the message's TTL.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart(&store.args(&args)).await;
    let expired = dave.next("message.expired", Duration::from_secs(10)).await;
    assert_eq!(expired["message_id"], sent["message_id"], "{expired}");
    assert_eq!(expired["recipient_id"], "carol");
    dave.none("message.expired", Duration::from_millis(500)).await;
}

/// Runs the server binary on `store` and expects it to refuse to start: returns stderr.
async fn refused_start(store: &str) -> String {
    let path = tokio::task::spawn_blocking(|| binary("chat-mcp-http")).await.expect("build");
    let output = tokio::process::Command::new(path)
        .args(["--host", "127.0.0.1", "--port", "0", "--store", store])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = within(STEP, "a refused server exits", output).await.expect("run chat-mcp-http");
    assert!(!output.status.success(), "the server started on a store it should refuse");
    assert_ne!(output.status.code(), Some(0));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_foreign_store_is_refused_with_a_clear_message() {
    let store = Store::new();
    write(&store.path, b"this is not a database, just text that happens to be here\n".repeat(100).as_slice());
    let error = refused_start(&store.flag).await;
    assert!(error.contains(&store.path.display().to_string()), "names the file: {error}");
    assert!(error.contains("not an SQLite database") || error.contains("not a database"), "{error}");

    // A healthy store (stopped cleanly, so it is all in the one file) whose pages after
    // the first were then overwritten.
    let damaged = Store::new();
    let mut server = ServerProcess::start(&damaged.args(&[])).await;
    server.known_client("someone").await;
    assert!(server.terminate(Duration::from_secs(15)).await.success());
    let mut bytes = std::fs::read(&damaged.path).expect("read store");
    assert!(bytes.len() > 4096, "a store of {} bytes", bytes.len());
    bytes[4096..].fill(0xA5);
    write(&damaged.path, &bytes);
    let error = refused_start(&damaged.flag).await;
    assert!(error.contains(&damaged.path.display().to_string()), "names the file: {error}");

    // A missing directory.
    let error = refused_start("sqlite:/nonexistent-dir-of-mcp-chat/chat.db").await;
    assert!(error.contains("/nonexistent-dir-of-mcp-chat"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_store_is_refused() {
    let store = Store::new();
    let _server = ServerProcess::start(&store.args(&[])).await;
    let error = refused_start(&store.flag).await;
    assert!(error.contains("in use by another running mcp-chat server"), "{error}");
}
