//! A memory budget for stored events: participants who send large messages and leave do
//! not keep their messages in memory (defect: 200 pairs sending 20 messages of 16 KB and
//! leaving added 64 MB of RSS that was never released).

use serde_json::json;
use tests::{RawSession, ServerProcess, http};

const PAIRS: usize = 100;
const MESSAGES: usize = 20;
const SIZE: usize = 16_000;

/// The server's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

async fn gauge(server: &ServerProcess, name: &str) -> u64 {
    let text = server.get("/metrics").await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
}

/// `PAIRS` pairs meet, one side sends `MESSAGES` large messages the other never reads,
/// and both leave.
async fn abandon(server: &ServerProcess) {
    let big = "x".repeat(SIZE);
    for _ in 0..PAIRS {
        let mut a = RawSession::open(&server.url, None).await;
        let mut b = RawSession::open(&server.url, None).await;
        a.call("enter_queue", json!({})).await;
        let matched = b.call("enter_queue", json!({})).await;
        let room = matched["result"]["structuredContent"]["room_id"].as_str().expect("matched").to_owned();
        for _ in 0..MESSAGES {
            let sent = a.call("send_message", json!({"room_id": room, "message": big})).await;
            assert!(sent["result"]["isError"] != true, "{sent}");
        }
        for s in [&a, &b] {
            let r = http().delete(&s.url).header("mcp-session-id", &s.id).send().await.expect("DELETE");
            assert_eq!(r.status(), 204);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_participants_do_not_hold_their_messages() {
    let server = ServerProcess::start(&["--rate-messages", "100000"]).await;
    abandon(&server).await;
    let held = gauge(&server, "mcp_chat_inbox_bytes").await;
    let rss_first = rss_bytes(server.pid());
    abandon(&server).await;
    let held_again = gauge(&server, "mcp_chat_inbox_bytes").await;
    let rss_second = rss_bytes(server.pid());
    let sent = (PAIRS * MESSAGES * SIZE) as u64;
    println!(
        "sent {} MB per round; inbox bytes held after it: {} KB, then {} KB; RSS {} MB, then {} MB",
        sent / 1_000_000,
        held / 1000,
        held_again / 1000,
        rss_first / 1_000_000,
        rss_second / 1_000_000
    );
    // Each participant keeps at most the offline budget (32 KiB), each ended room as much
    // of history: a few MB for 2 x 100 pairs, not the 32 MB sent.
    assert!(held < sent / 4, "stores shrink when participants leave: {held} bytes of {sent} held");
    assert!(held_again < 2 * sent / 4, "and stay bounded: {held_again}");
    // Memory freed in the first round is reused by the second, instead of growing by
    // another round's worth.
    let growth = rss_second.saturating_sub(rss_first);
    assert!(growth < sent / 2, "RSS grew by {growth} bytes in the second round ({sent} sent)");
}
