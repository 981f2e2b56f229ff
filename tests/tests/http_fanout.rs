//! A client that stops reading its SSE stream must not slow anyone else down: pushes to it
//! queue (capped) in its own pusher while the core and other sessions carry on.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{RawSession, STEP, ServerProcess, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_stall_others() {
    let server = ServerProcess::start(&["--rate-messages", "1000000", "--event-buffer", "200"]).await;

    // Ann opens her GET stream and then never reads it.
    let mut ann = RawSession::open(&server.url, None).await;
    let _unread = ann.open_stream().await;
    ann.call("enter_queue", json!({"display_name": "Stalled"})).await;
    let bob = server.client().await;
    let room = bob.ok("enter_queue", json!({})).await;
    let room_id = room["room_id"].as_str().expect("room").to_owned();

    let cid = server.client().await;
    let dan = server.client().await;
    cid.ok("checkin_client", json!({"client_id": "cid"})).await;
    dan.ok("checkin_client", json!({"client_id": "dan"})).await;

    // Flood Ann with far more than her TCP buffers and rmcp's channels hold.
    let big = "x".repeat(16_000);
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..1500 {
        let sent = Instant::now();
        bob.ok("send_message", json!({"room_id": room_id, "message": big})).await;
        slowest = slowest.max(sent.elapsed());
    }
    let flood = started.elapsed();
    assert!(slowest < Duration::from_secs(2), "a send to the stalled reader took {slowest:?}");

    // Others still talk at normal speed.
    for n in 0..5 {
        let sent = Instant::now();
        cid.ok("send_message", json!({"recipient_id": "dan", "message": format!("ping {n}")})).await;
        let got = dan.next("message.received", STEP).await;
        assert_eq!(got["message"], format!("ping {n}"));
        let latency = sent.elapsed();
        assert!(latency < Duration::from_secs(1), "message {n} took {latency:?} (flood took {flood:?})");
    }
    let health = within(STEP, "healthz", server.get("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let metrics = server.get("/metrics").await.expect("metrics").text().await.expect("text");
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_chat_push_failures_total "))
        .and_then(|n| n.parse().ok())
        .expect("push failures metric");
    assert!(failures > 0, "pushes beyond the cap are skipped (and stay fetchable)");
}
