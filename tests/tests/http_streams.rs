//! The session layer: the GET stream's event ids and `Last-Event-ID` replay,
//! `notifications/cancelled` for a blocking call, and what requests for a missing,
//! unknown or mis-versioned session get.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{RawSession, ServerProcess, SseEvents, raw_post, rpc_messages, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_stream_gets_what_it_missed() {
    let server = ServerProcess::start(&["--stream-grace", "10s"]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    let mut stream = SseEvents::new(ann.open_stream().await);
    ann.call("enter_queue", json!({"display_name": "Ann"})).await;
    let bob = server.client().await;
    let room = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let room_id = room["room_id"].as_str().expect("room").to_owned();
    stream.next_method("chatroom.found").await;

    bob.ok("send_message", json!({"room_id": room_id, "message": "one"})).await;
    let (seen, one) = stream.next_method("message.received").await;
    assert_eq!(one["params"]["message"], "one");
    let seen = seen.expect("pushed events carry an id");

    // The stream drops; Bob writes twice meanwhile; Ann reconnects where she left off.
    drop(stream);
    bob.ok("send_message", json!({"room_id": room_id, "message": "two"})).await;
    bob.ok("send_message", json!({"room_id": room_id, "message": "three"})).await;
    let mut resumed = SseEvents::new(ann.open_stream_after(Some(&seen)).await);
    let (two_id, two) = resumed.next().await;
    assert_eq!(two["params"]["message"], "two", "{two}");
    let (three_id, three) = resumed.next().await;
    assert_eq!(three["params"]["message"], "three", "{three}");
    let ids: Vec<u64> = [Some(seen), two_id.clone(), three_id.clone()]
        .into_iter()
        .map(|id| id.expect("id").parse().expect("numeric id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids count up: {ids:?}");

    // A stream opened without Last-Event-ID gets again what the broken stream was handed
    // moments before it broke (same ids, so a client drops what it has), then what comes
    // next.
    drop(resumed);
    let mut fresh = SseEvents::new(ann.open_stream().await);
    bob.ok("send_message", json!({"room_id": room_id, "message": "four"})).await;
    let mut again = Vec::new();
    loop {
        let (id, event) = fresh.next_method("message.received").await;
        if event["params"]["message"] == "four" {
            break;
        }
        again.push((id.expect("id"), event["params"]["message"].clone()));
    }
    let expected = [two_id.expect("id"), three_id.expect("id")];
    assert!(
        again.iter().all(|(id, _)| expected.contains(id)),
        "only the recent messages come again, with their ids: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_wait_returns_at_once() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    ann.call("checkin_client", json!({"client_id": "ann"})).await;
    let (url, id) = (server.url.clone(), ann.id.clone());
    let started = Instant::now();
    let wait = tokio::spawn(async move {
        let body = json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
            "params": {"name": "wait_for_events", "arguments": {"timeout": 30}}});
        let response = raw_post(&url, None, Some(&id), &body.to_string()).await;
        response.text().await.expect("body")
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 41, "reason": "user gave up"}});
    assert_eq!(ann.post_raw(&cancel.to_string()).await.status(), 202);
    let body = within(Duration::from_secs(5), "the cancelled wait", wait).await.expect("task");
    assert!(started.elapsed() < Duration::from_secs(10), "the wait ran on for {:?}", started.elapsed());
    // Its stream ends without a response: the client has given up on the request.
    let answer = rpc_messages(&body).into_iter().find(|m| m["id"] == 41);
    assert!(answer.is_none(), "a cancelled request gets no response: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_missing_or_unknown_sessions_are_refused() {
    let server = ServerProcess::start(&[]).await;
    let ann = RawSession::open(&server.url, None).await;
    let client = reqwest::Client::new();
    let get = |session: Option<&str>, version: &str| {
        let mut request = client
            .get(&server.url)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", version.to_owned());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session.to_owned());
        }
        request.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(get(None, "2025-11-25").await.expect("GET")), 400, "no session id");
    assert_eq!(status(get(Some("nope"), "2025-11-25").await.expect("GET")), 404, "unknown session");
    assert_eq!(status(get(Some(&ann.id), "1999-01-01").await.expect("GET")), 400, "unknown version");
    let delete = client.delete(&server.url).header("mcp-session-id", "nope").send().await.expect("DELETE");
    assert_eq!(delete.status(), 404);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    assert_eq!(raw_post(&server.url, None, Some("nope"), &ping).await.status(), 404);
    assert_eq!(raw_post(&server.url, None, None, &ping).await.status(), 400);
    // The real session still works, and ends with DELETE.
    assert_eq!(ann.post_raw(&ping).await.status(), 200);
    let deleted = client
        .delete(&server.url)
        .header("mcp-session-id", &ann.id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), 204);
    assert_eq!(ann.post_raw(&ping).await.status(), 404, "a deleted session is gone");
}

/// Clients open their GET stream after `initialize` returns, so events can come first:
/// the first stream gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_before_the_first_stream_are_delivered_on_it() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    ann.call("enter_queue", json!({"display_name": "Ann"})).await;
    let bob = server.client().await;
    bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let mut stream = SseEvents::new(ann.open_stream().await);
    let (id, found) = stream.next().await;
    assert_eq!(found["method"], "chatroom.found", "{found}");
    assert_eq!(id.as_deref(), Some("1"));
}
