//! The edges of the Streamable HTTP protocol, tested over raw HTTP against the real
//! binary: what a spec-following client may send that the happy path never does.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use tests::{RawSession, ServerProcess, http, raw_post, rpc_messages, within};

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

fn with_progress(mut request: Value, token: &str) -> Value {
    request["params"]["_meta"] = json!({"progressToken": token});
    request
}

/// A cancelled blocking call, on the direct path and on the path with progress, gets no
/// response: its POST stream ends without one (the spec: "receivers ... SHOULD NOT send
/// a response for the cancelled request").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_blocking_call_gets_no_response() {
    let server = ServerProcess::start(&["--progress-interval", "200ms"]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    ann.call("checkin_client", json!({"client_id": "ann"})).await;
    let requests = [
        call(51, "wait_for_events", json!({"timeout": 30})),
        call(52, "send_message_and_wait", json!({"recipient_id": "bob", "message": "hi", "timeout": 30})),
        with_progress(call(53, "wait_for_events", json!({"timeout": 30})), "p-53"),
        with_progress(
            call(54, "send_message_and_wait", json!({"recipient_id": "bob", "message": "hi", "timeout": 30})),
            "p-54",
        ),
    ];
    for request in requests {
        let id = request["id"].clone();
        let (url, session) = (server.url.clone(), ann.id.clone());
        let started = Instant::now();
        let body = request.to_string();
        let pending = tokio::spawn(async move {
            let response = raw_post(&url, None, Some(&session), &body).await;
            assert_eq!(response.status(), 200);
            response.text().await.expect("body")
        });
        // Past the progress interval, so the progress path has sent some.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": "user gave up"}});
        assert_eq!(ann.post_raw(&cancel.to_string()).await.status(), 202);
        let body =
            within(Duration::from_secs(5), "the cancelled call's stream ends", pending).await.expect("task");
        assert!(started.elapsed() < Duration::from_secs(10), "ran on for {:?}", started.elapsed());
        let messages = rpc_messages(&body);
        assert!(
            messages.iter().all(|m| m.get("id") != Some(&id)),
            "request {id}: no response after cancellation, got {messages:?}"
        );
    }
    // The session is still fine.
    let identity = ann.call("get_my_identity", json!({})).await;
    assert_eq!(identity["result"]["structuredContent"]["checked_in"], true, "{identity}");
}

/// `resources/read` for `uri` in `session`: the JSON-RPC answer.
async fn read(session: &RawSession, id: u64, uri: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "resources/read", "params": {"uri": uri}});
    let text = session.post_raw(&body.to_string()).await.text().await.expect("body");
    rpc_messages(&text).into_iter().find(|m| m["id"] == id).expect("an answer")
}

/// `resources/read` answers with resource errors (`-32002`, resource not found) and says
/// what to do, never `-32600 Invalid Request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_reads_fail_with_resource_errors() {
    let server = ServerProcess::start(&[]).await;
    let nobody = RawSession::open(&server.url, None).await;
    let answer = read(&nobody, 1, "chat://rooms/r_0000000000000001").await;
    assert_eq!(answer["error"]["code"], -32002, "no identity: {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("enter_queue") || message.contains("resume_session"), "actionable: {answer}");

    let answer = read(&nobody, 2, "chat://nothing").await;
    assert_eq!(answer["error"]["code"], -32002, "unknown URI: {answer}");

    // Someone else's room and an unknown one look the same.
    let mut ann = RawSession::open(&server.url, None).await;
    ann.call("enter_queue", json!({})).await;
    let mut bob = RawSession::open(&server.url, None).await;
    let matched = bob.call("enter_queue", json!({})).await;
    let room = matched["result"]["structuredContent"]["room_id"].as_str().expect("matched").to_owned();
    let mut eve = RawSession::open(&server.url, None).await;
    eve.call("checkin_client", json!({"client_id": "eve"})).await;
    let answer = read(&eve, 3, &format!("chat://rooms/{room}")).await;
    assert_eq!(answer["error"]["code"], -32002, "not a member: {answer}");
    let answer = read(&bob, 4, &format!("chat://rooms/{room}")).await;
    assert!(answer["result"]["contents"].is_array(), "a member reads it: {answer}");
}

/// Only `/mcp`, `/healthz` and `/metrics` are served; every other path is `404` and
/// opens no session. `/mcp` answers an unsupported method with `405` and the methods
/// it does support.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_mcp_endpoint_and_health_routes_answer() {
    let server = ServerProcess::start(&[]).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "edges", "version": "1"}}})
    .to_string();
    for path in ["/wrongpath", "/", "/mcp/", "/mcp/extra", "/healthz/mcp"] {
        let url = format!("{}{path}", server.base);
        let response = raw_post(&url, None, None, &init).await;
        assert_eq!(response.status(), 404, "POST {path}");
        assert!(response.headers().get("mcp-session-id").is_none(), "POST {path} opened a session");
        let response = http().get(&url).header("accept", "text/event-stream").send().await.expect("GET");
        assert_eq!(response.status(), 404, "GET {path}");
        let response = http().delete(&url).header("mcp-session-id", "x").send().await.expect("DELETE");
        assert_eq!(response.status(), 404, "DELETE {path}");
    }
    let health: Value = server.get("/healthz").await.expect("healthz").json().await.expect("json");
    assert_eq!(health["counts"]["sessions"], 0, "no session was opened: {health}");
    assert_eq!(server.get("/metrics").await.expect("metrics").status(), 200);

    let response = http().put(&server.url).body("{}").send().await.expect("PUT");
    assert_eq!(response.status(), 405);
    let allow = response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    for method in ["GET", "POST", "DELETE"] {
        assert!(allow.contains(method), "Allow: {allow}");
    }
    let response = http().post(format!("{}/healthz", server.base)).send().await.expect("POST /healthz");
    assert_eq!(response.status(), 405);
    // The endpoint itself still works.
    RawSession::open(&server.url, None).await;
}
