//! Clients that disappear: without DELETE (dropped connection, SIGKILL) the partner hears
//! `timeout` after the reconnect grace; with DELETE it hears `left` at once; a client that
//! resumes within the grace keeps its room.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{RawSession, STEP, ServerProcess, TestClient, within};

const GRACE: &str = "1500ms";

fn structured(response: &Value) -> Value {
    response["result"]["structuredContent"].clone()
}

/// Ann via raw HTTP (so she can vanish without DELETE), Bob via rmcp; both matched.
async fn matched_pair(server: &ServerProcess) -> (RawSession, reqwest::Response, TestClient, Value) {
    let mut ann = RawSession::open(&server.url, None).await;
    let stream = ann.open_stream().await;
    let entered = structured(&ann.call("enter_queue", json!({"display_name": "Ann"})).await);
    assert_eq!(entered["status"], "waiting", "{entered}");
    let bob = server.client().await;
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(matched["status"], "matched");
    (ann, stream, bob, entered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_gives_partner_timeout_after_grace() {
    let server = ServerProcess::start(&["--reconnect-grace", GRACE, "--stream-grace", "300ms"]).await;
    let (_ann, stream, bob, _) = matched_pair(&server).await;
    bob.next("chatroom.found", STEP).await;

    let dropped = Instant::now();
    drop(stream);
    // Not before the grace: the partner might still come back.
    bob.none("partner.disconnected", Duration::from_millis(1200)).await;
    let gone = bob.next("partner.disconnected", STEP).await;
    let after = dropped.elapsed();
    assert_eq!(gone["reason"], "timeout", "{gone}");
    assert!(after >= Duration::from_millis(1500), "told after {after:?}, before the grace ran out");
    assert!(after < Duration::from_secs(6), "told only after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_within_grace_keeps_the_room() {
    let server = ServerProcess::start(&["--reconnect-grace", "4s", "--stream-grace", "200ms"]).await;
    let (_ann, stream, bob, entered) = matched_pair(&server).await;
    let found = bob.next("chatroom.found", STEP).await;
    let room_id = found["room_id"].as_str().expect("room").to_owned();
    let (user_id, token) = (entered["user_id"].clone(), entered["resume_token"].clone());

    drop(stream);
    tokio::time::sleep(Duration::from_millis(800)).await; // the old session is closed as lost by now
    let ann_again = server.client().await;

    let wrong =
        ann_again.err("resume_session", json!({"user_id": user_id, "resume_token": "rt_wrong"})).await;
    assert_eq!(wrong["error"], "bad_resume_token", "{wrong}");
    let resumed = ann_again.ok("resume_session", json!({"user_id": user_id, "resume_token": token})).await;
    assert_eq!(resumed["state"], "chatting", "{resumed}");
    assert_eq!(resumed["room_id"], room_id.as_str());

    ann_again.ok("send_message", json!({"room_id": room_id, "message": "sorry, lost my connection"})).await;
    let message = bob.next("message.received", STEP).await;
    assert_eq!(message["message"], "sorry, lost my connection");
    bob.none("partner.disconnected", Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_tells_partner_left_at_once() {
    let server = ServerProcess::start(&["--reconnect-grace", "30s"]).await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({})).await;
    bob.ok("enter_queue", json!({})).await;
    bob.next("chatroom.found", STEP).await;
    let closed = Instant::now();
    ann.close().await;
    let gone = bob.next("partner.disconnected", Duration::from_secs(3)).await;
    assert_eq!(gone["reason"], "left");
    assert!(closed.elapsed() < Duration::from_secs(3));
}

/// A DELETE must end the session at once even while one of its calls is blocked in
/// `wait_for_events` (rmcp waits for in-flight calls before closing a session, so the
/// wait has to notice the session ending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_a_blocking_wait_tells_partner_at_once() {
    let server = ServerProcess::start(&["--reconnect-grace", "30s"]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    let bob = server.client().await;
    ann.call("enter_queue", json!({})).await;
    bob.ok("enter_queue", json!({})).await;
    bob.next("chatroom.found", STEP).await;
    ann.call("wait_for_events", json!({"timeout": 0.1})).await;
    let wait_body = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
        "params": {"name": "wait_for_events", "arguments": {"after_seq": 1, "timeout": 40}}});
    let waiting = ann.post_raw(&wait_body.to_string()).await;
    let wait_done = tokio::spawn(async move { waiting.text().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closed = Instant::now();
    let delete = tests::http().delete(&server.url).header("mcp-session-id", &ann.id).send();
    let status = within(Duration::from_secs(3), "DELETE", delete).await.expect("DELETE").status();
    assert!(status.is_success(), "DELETE: {status}");
    let gone = bob.next("partner.disconnected", Duration::from_secs(3)).await;
    assert_eq!(gone["reason"], "left");
    assert!(closed.elapsed() < Duration::from_secs(2), "took {:?}", closed.elapsed());
    let _ = within(Duration::from_secs(3), "blocked wait returns", wait_done).await;
}

/// Not a test by itself: the body of the child process that `killed_client_*` SIGKILLs.
/// It connects, enters the queue, reports its user id on stdout and waits to be killed.
#[tokio::test]
#[ignore = "helper process for killed_client_gives_partner_timeout"]
async fn child_client() {
    let Ok(url) = std::env::var("MCP_CHAT_CHILD_URL") else { return };
    let client = TestClient::connect(&url, None).await;
    let entered = client.ok("enter_queue", json!({"display_name": "Kid"})).await;
    println!("READY {}", entered["user_id"].as_str().unwrap_or_default());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_client_gives_partner_timeout() {
    let server = ServerProcess::start(&["--reconnect-grace", GRACE, "--stream-grace", "500ms"]).await;
    let (mut child, kid_id) = tests::spawn_child_client("child_client", &server.url).await;

    let bob = server.client().await;
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(matched["partner"]["user_id"], kid_id.as_str());

    let killed = Instant::now();
    child.start_kill().expect("SIGKILL the child");
    let _ = child.wait().await;
    let gone = bob.next("partner.disconnected", Duration::from_secs(10)).await;
    assert_eq!(gone["reason"], "timeout", "{gone}");
    let after = killed.elapsed();
    // Stream grace (0.5 s) + reconnect grace (1.5 s) + a little.
    assert!(after < Duration::from_secs(5), "partner told only after {after:?}");
    let metrics = server.get("/metrics").await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("mcp_chat_sessions_lost_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_kept_alive_and_silent_sessions_expire() {
    let server = ServerProcess::start(&[
        "--session-idle-timeout",
        "1s",
        "--keepalive-ping",
        "300ms",
        "--reconnect-grace",
        "1s",
    ])
    .await;
    // Bob holds a GET stream (rmcp's client opens one) and otherwise stays quiet.
    let bob = server.client().await;
    bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    // Ann only ever POSTs (more than once, so she is not a single-call session) and then
    // goes silent: no stream, no requests.
    let mut ann = RawSession::open(&server.url, None).await;
    let matched = structured(&ann.call("enter_queue", json!({"display_name": "Ann"})).await);
    assert_eq!(matched["status"], "matched", "{matched}");
    ann.call("get_my_identity", json!({})).await;
    bob.next("chatroom.found", STEP).await;

    // Ann's session is lost after the idle timeout (Bob hears `partner.reconnecting`) and
    // ends after the grace (Bob hears `timeout`).
    bob.next("partner.reconnecting", Duration::from_secs(4)).await;
    let gone = bob.next("partner.disconnected", Duration::from_secs(8)).await;
    assert_eq!(gone["reason"], "timeout");
    let expired = ann.post_raw(&json!({"jsonrpc": "2.0", "id": 99, "method": "ping"}).to_string()).await;
    assert_eq!(expired.status(), 404, "the silent session is gone");

    // Bob, silent for well over the idle timeout but listening, is still there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let me = bob.ok("get_my_identity", json!({})).await;
    assert_eq!(me["display_name"], "Bob");
}

/// A client without a GET stream that keeps calling tools is active, whichever path
/// answers its calls; it is closed only once it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_calling_is_not_idle() {
    let server = ServerProcess::start(&["--session-idle-timeout", "1s", "--reconnect-grace", "1s"]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    let joined = structured(&ann.call("enter_queue", json!({"display_name": "Ann"})).await);
    assert_eq!(joined["status"], "waiting", "{joined}");
    let busy_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < busy_until {
        let me = structured(&ann.call("get_my_identity", json!({})).await);
        assert_eq!(me["display_name"], "Ann", "the busy session is kept: {me}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Silent from now on: lost after the idle timeout, gone after the reconnect grace.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let expired = ann.post_raw(&json!({"jsonrpc": "2.0", "id": 99, "method": "ping"}).to_string()).await;
    assert_eq!(expired.status(), 404, "the silent session is gone");
}
