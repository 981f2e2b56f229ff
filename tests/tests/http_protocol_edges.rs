//! The edges of the Streamable HTTP protocol, tested over raw HTTP against the real
//! binary: what a spec-following client may send that the happy path never does.

use serde_json::{Value, json};

use tests::{RawSession, ServerProcess, http, raw_post};

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
