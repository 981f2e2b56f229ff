//! The public contract: `tools/list` (snapshot), the initialize result, protocol version
//! negotiation, `/healthz`, `/metrics`, and graceful shutdown.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{STEP, ServerProcess, raw_post, rpc_messages};

fn init_body(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "contract", "version": "1"}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_is_the_public_contract() {
    let server = ServerProcess::start(&[]).await;
    let client = server.client().await;
    let tools = tests::within(STEP, "tools/list", client.peer().list_all_tools()).await.expect("tools/list");
    let mut tools = serde_json::to_value(&tools).expect("json");
    if let Value::Array(list) = &mut tools {
        list.sort_by_key(|t| t["name"].as_str().unwrap_or_default().to_owned());
    }
    insta::assert_json_snapshot!("tools_list", tools);

    let info = client.peer().peer_info().expect("server info");
    let info = serde_json::to_value(info).expect("json");
    insta::assert_json_snapshot!("initialize_result", info, { ".serverInfo.version" => "[version]" });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_versions_are_negotiated() {
    let server = ServerProcess::start(&[]).await;
    for (asked, expected) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        // The session-less revision is answered with the newest one that has sessions.
        ("2026-07-28", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let response = raw_post(&server.url, None, None, &init_body(asked)).await;
        assert_eq!(response.status(), 200, "{asked}");
        assert!(response.headers().get("mcp-session-id").is_some(), "{asked}: a session is created");
        let messages = rpc_messages(&response.text().await.expect("body"));
        assert_eq!(messages[0]["result"]["protocolVersion"], expected, "{asked}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_report_state() {
    let server = ServerProcess::start(&[]).await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({})).await;
    let room = bob.ok("enter_queue", json!({})).await;
    bob.ok("send_message", json!({"room_id": room["room_id"], "message": "counted"})).await;
    ann.next("message.received", STEP).await;

    let health: Value = server.get("/healthz").await.expect("healthz").json().await.expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["counts"]["sessions"], 2);
    assert_eq!(health["counts"]["rooms"], 1);
    assert_eq!(health["counts"]["queued"], 0);
    assert_eq!(health["totals"]["messages_relayed"], 1);

    let response = server.get("/metrics").await.expect("metrics");
    assert!(
        response.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "prometheus content type"
    );
    let text = response.text().await.expect("text");
    for line in [
        "mcp_chat_sessions 2",
        "mcp_chat_rooms 1",
        "mcp_chat_queued 0",
        "mcp_chat_messages_relayed_total 1",
        "# TYPE mcp_chat_tool_duration_seconds histogram",
        "mcp_chat_tool_duration_seconds_count{tool=\"enter_queue\"} 2",
        "mcp_chat_tool_duration_seconds_bucket{tool=\"send_message\",le=\"+Inf\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let pushed = text
        .lines()
        .find_map(|l| l.strip_prefix("mcp_chat_events_pushed_total "))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("events pushed");
    assert!(pushed >= 3, "{pushed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_partners_and_exits_zero() {
    let mut server = ServerProcess::start(&[]).await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({})).await;
    bob.ok("enter_queue", json!({})).await;
    ann.next("chatroom.found", STEP).await;
    bob.next("chatroom.found", STEP).await;
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    for client in [&ann, &bob] {
        let bye = client.next("partner.disconnected", STEP).await;
        assert_eq!(bye["reason"], "shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limit_and_delete_answer_plainly() {
    let server = ServerProcess::start(&["--max-sessions", "2"]).await;
    let first = tests::RawSession::open(&server.url, None).await;
    let _second = tests::RawSession::open(&server.url, None).await;
    let refused = raw_post(&server.url, None, None, &init_body("2025-11-25")).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().get("retry-after").is_some());
    let error: Value = refused.json().await.expect("json");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("limit of 2 sessions")), "{error}");

    // DELETE ends a session with 204, which frees a place.
    let deleted =
        tests::http().delete(&server.url).header("mcp-session-id", &first.id).send().await.expect("DELETE");
    assert_eq!(deleted.status(), 204);
    tests::within(STEP, "a place frees up", async {
        loop {
            if raw_post(&server.url, None, None, &init_body("2025-11-25")).await.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Tools that answer at once are answered with one `application/json` message; the
/// blocking ones with an SSE stream, which carries progress notifications before the
/// result when the request asks for them. Both are valid Streamable HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_are_answered_with_json_or_with_progress_over_sse() {
    let server = ServerProcess::start(&["--progress-interval", "200ms"]).await;
    let ann = tests::RawSession::open(&server.url, None).await;
    let call = |id: u64, name: &str, arguments: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
            .to_string()
    };

    let response = ann.post_raw(&call(7, "enter_queue", json!({"display_name": "Ann"}))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "application/json");
    let message: Value = response.json().await.expect("one JSON message");
    assert_eq!(message["jsonrpc"], "2.0");
    assert_eq!(message["id"], 7);
    assert_eq!(message["result"]["structuredContent"]["status"], "waiting", "{message}");

    // A refusal is a tool result with isError, on the same path.
    let response = ann.post_raw(&call(8, "send_message", json!({"message": "to nobody"}))).await;
    assert_eq!(content_type(&response), "application/json");
    let message: Value = response.json().await.expect("one JSON message");
    assert_eq!(message["id"], 8);
    assert_eq!(message["result"]["isError"], true, "{message}");

    // An unknown tool is a JSON-RPC error with the request's id.
    let response = ann.post_raw(&call(9, "no_such_tool", json!({}))).await;
    let message: Value = response.json().await.expect("one JSON message");
    assert_eq!(message["id"], 9);
    assert!(message["error"]["message"].as_str().is_some_and(|m| m.contains("no_such_tool")), "{message}");

    // A wait answers over SSE (keep-alives while it waits), without progress unless asked.
    let response = ann.post_raw(&call(10, "wait_for_events", json!({"timeout": 0.3}))).await;
    assert_eq!(content_type(&response), "text/event-stream");
    let messages = rpc_messages(&response.text().await.expect("body"));
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["id"], 10);
    assert!(messages[0]["result"]["structuredContent"]["events"].is_array(), "{messages:?}");

    let with_progress = json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {
        "name": "wait_for_events", "arguments": {"timeout": 1}, "_meta": {"progressToken": "p-11"}}});
    let response = ann.post_raw(&with_progress.to_string()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "text/event-stream");
    let messages = rpc_messages(&response.text().await.expect("body"));
    let progress: Vec<&Value> = messages.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert!(!progress.is_empty(), "progress while waiting: {messages:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "p-11"), "{progress:?}");
    let answer = messages.last().expect("messages");
    assert_eq!(answer["id"], 11, "the result comes last: {messages:?}");
    assert_eq!(answer["result"]["structuredContent"]["timed_out"], true, "{answer}");
}
