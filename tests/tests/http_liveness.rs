//! A session lives as long as its client, not as long as one socket: a dropped GET stream
//! is not the end while the client keeps calling or comes back; the partner is told
//! `partner.reconnecting` / `partner.reconnected`; only a session that stays away past
//! the reconnect grace ends (`404`), and the partner learns which messages never
//! arrived. Nothing falls between two streams.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{RawSession, STEP, ServerProcess, SseEvents, TestClient, within};

fn structured(response: &Value) -> Value {
    response["result"]["structuredContent"].clone()
}

fn ping() -> String {
    json!({"jsonrpc": "2.0", "id": 99, "method": "ping"}).to_string()
}

/// Ann over raw HTTP with a GET stream, Bob over rmcp; matched. Returns Ann's stream
/// reader (the chatroom.found already read) and the room id.
async fn matched_pair(server: &ServerProcess) -> (RawSession, SseEvents, TestClient, String) {
    let mut ann = RawSession::open(&server.url, None).await;
    let mut stream = SseEvents::new(ann.open_stream().await);
    let entered = structured(&ann.call("enter_queue", json!({"display_name": "Ann"})).await);
    assert_eq!(entered["status"], "waiting", "{entered}");
    let bob = server.client().await;
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let room = matched["room_id"].as_str().expect("room").to_owned();
    stream.next_method("chatroom.found").await;
    bob.next("chatroom.found", STEP).await;
    (ann, stream, bob, room)
}

/// Defect: the session was destroyed `--stream-grace` after its GET stream dropped, even
/// while the client kept calling: a wait returned early and the next POST got `404`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_does_not_end_a_session_that_keeps_calling() {
    let server = ServerProcess::start(&["--stream-grace", "1s"]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    ann.call("checkin_client", json!({"client_id": "ann"})).await;
    drop(ann.open_stream().await);
    let started = Instant::now();
    let waited = structured(&ann.call("wait_for_events", json!({"timeout": 3})).await);
    assert_eq!(waited["timed_out"], true, "{waited}");
    assert!(started.elapsed() >= Duration::from_millis(2900), "the wait ended after {:?}", started.elapsed());
    let after = ann.post_raw(&ping()).await;
    assert_eq!(after.status(), 200, "the session is still served");
    let me = structured(&ann.call("get_my_identity", json!({})).await);
    assert_eq!(me["user_id"], "ann", "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_client_comes_back_with_the_same_session_and_misses_nothing() {
    let server = ServerProcess::start(&["--stream-grace", "300ms", "--reconnect-grace", "20s"]).await;
    let (ann, stream, bob, room) = matched_pair(&server).await;

    drop(stream);
    let reconnecting = bob.next("partner.reconnecting", STEP).await;
    assert_eq!(reconnecting["room_id"], room.as_str(), "{reconnecting}");
    assert!(reconnecting["reconnect_by"].is_string(), "{reconnecting}");
    let sent = bob.ok("send_message", json!({"room_id": room, "message": "still there?"})).await;

    // The same Mcp-Session-Id, a new stream without Last-Event-ID: served, not 404.
    let mut back = SseEvents::new(ann.open_stream().await);
    let (_, missed) = back.next_method("message.received").await;
    assert_eq!(missed["params"]["message_id"], sent["message_id"], "{missed}");
    bob.next("partner.reconnected", STEP).await;
    bob.none("partner.disconnected", Duration::from_millis(500)).await;
    assert_eq!(ann.post_raw(&ping()).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stays_away_ends_and_its_partner_learns_what_was_lost() {
    let server = ServerProcess::start(&["--stream-grace", "300ms", "--reconnect-grace", "1500ms"]).await;
    let (ann, stream, bob, room) = matched_pair(&server).await;
    drop(stream);
    bob.next("partner.reconnecting", STEP).await;
    let lost = bob.ok("send_message", json!({"room_id": room, "message": "hello?"})).await;
    let gone = bob.next("partner.disconnected", STEP).await;
    assert_eq!(gone["reason"], "timeout", "{gone}");
    assert_eq!(gone["undelivered"], json!([lost["message_id"]]), "{gone}");
    assert_eq!(ann.post_raw(&ping()).await.status(), 404, "a session that is really over");
}

/// A session that never opened a stream and made one call (a per-call host) does not
/// hold the queue or an identity hostage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_call_session_lets_go_quickly() {
    let server = ServerProcess::start(&["--single-call-timeout", "500ms"]).await;
    let mut ghost = RawSession::open(&server.url, None).await;
    let queued = structured(&ghost.call("enter_queue", json!({"user_id": "ghost"})).await);
    assert_eq!(queued["status"], "waiting", "{queued}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let bob = server.client().await;
    let waiting = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(waiting["status"], "waiting", "not matched with the ghost: {waiting}");
    assert_eq!(ghost.post_raw(&ping()).await.status(), 404);
}

/// Nothing falls between two streams: a client that closes its stream and opens a new
/// one (without Last-Event-ID) around every message still gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_reopen_around_messages_misses_nothing() {
    const CYCLES: usize = 1000;
    let server = ServerProcess::start(&["--stream-grace", "30s", "--rate-messages", "100000"]).await;
    let (ann, stream, bob, room) = matched_pair(&server).await;
    drop(stream);
    let mut seen = std::collections::BTreeSet::new();
    let mut sent = Vec::with_capacity(CYCLES);
    let started = Instant::now();
    let mut current = SseEvents::new(ann.open_stream().await);
    for i in 0..CYCLES {
        let reply = bob.ok("send_message", json!({"room_id": room, "message": format!("m{i}")})).await;
        sent.push(reply["message_id"].as_str().expect("id").to_owned());
        // Read what is already there, then replace the stream at once: the next message
        // races the close.
        while let Some((_, event)) =
            current.try_next(Duration::from_millis(if i % 2 == 0 { 0 } else { 2 })).await
        {
            if event["method"] == "message.received" {
                seen.insert(event["params"]["message_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        current = SseEvents::new(ann.open_stream().await);
    }
    // Drain the last stream until everything is in or nothing more comes.
    while seen.len() < CYCLES {
        let Some((_, event)) = current.try_next(Duration::from_secs(3)).await else { break };
        if event["method"] == "message.received" {
            seen.insert(event["params"]["message_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let missed: Vec<&String> = sent.iter().filter(|id| !seen.contains(*id)).collect();
    println!("{CYCLES} close/reopen cycles in {:?}: {} missed", started.elapsed(), missed.len());
    assert!(missed.is_empty(), "{} of {CYCLES} messages never reached a stream: {missed:?}", missed.len());
    within(STEP, "bob is still fine", bob.ok("get_my_identity", json!({}))).await;
}

/// Every SSE stream opens with a priming event: an id, no data, and `retry:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_streams_open_with_a_priming_event() {
    let server = ServerProcess::start(&["--sse-retry", "2500ms"]).await;
    let ann = RawSession::open(&server.url, None).await;
    let mut response = ann.open_stream().await;
    let first = within(STEP, "priming event", response.chunk()).await.expect("read").expect("a chunk");
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("id: 0") || text.contains("id:0"), "{text}");
    assert!(text.contains("retry: 2500") || text.contains("retry:2500"), "{text}");
}
