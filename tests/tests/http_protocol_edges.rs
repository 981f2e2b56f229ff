//! The edges of the Streamable HTTP protocol, tested over raw HTTP against the real
//! binary: what a spec-following client may send that the happy path never does.

use serde_json::{Value, json};

use tests::{RawSession, ServerProcess, http, raw_post, rpc_messages};

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
