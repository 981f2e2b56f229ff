//! The edges of the Streamable HTTP protocol, tested over raw HTTP against the real
//! binary: what a spec-following client may send that the happy path never does.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{RawSession, STEP, ServerProcess, http, raw_post, rpc_messages, within};

/// One SSE event of a response body, as written on the wire.
#[derive(Debug, Default)]
struct SseEvent {
    id: Option<String>,
    retry: Option<String>,
    /// The `data:` lines joined; `None` when the event has no data field.
    data: Option<String>,
}

/// The events of an SSE body (comments, i.e. keep-alives, are not events).
fn sse_events(body: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    for block in body.replace("\r\n", "\n").split("\n\n") {
        let mut event = SseEvent::default();
        let mut any = false;
        for line in block.lines().filter(|l| !l.is_empty() && !l.starts_with(':')) {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            any = true;
            match field {
                "id" => event.id = Some(value),
                "retry" => event.retry = Some(value),
                "data" => {
                    event.data = Some(match event.data.take() {
                        Some(before) => format!("{before}\n{value}"),
                        None => value,
                    });
                }
                _ => {}
            }
        }
        if any {
            events.push(event);
        }
    }
    events
}

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
    server.known_client("bob").await;
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

/// Opens a raw session that negotiated `version`; returns its id.
async fn open_session(url: &str, version: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "edges", "version": "1"}}});
    let response = raw_post(url, None, None, &body.to_string()).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["mcp-session-id"].to_str().expect("ascii").to_owned();
    let init = rpc_messages(&response.text().await.expect("body"));
    assert_eq!(init[0]["result"]["protocolVersion"], version);
    id
}

/// POSTs `body` in `session` as a client of `version` would (2025-03-26 clients send no
/// `MCP-Protocol-Version` header).
async fn post(url: &str, session: &str, version: Option<&str>, body: &str) -> reqwest::Response {
    let mut request = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .body(body.to_owned());
    if let Some(version) = version {
        request = request.header("mcp-protocol-version", version);
    }
    within(STEP, "POST", request.send()).await.expect("POST")
}

/// 2025-03-26 requires servers to accept JSON-RPC batches; later revisions removed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_served_for_2025_03_26_sessions() {
    let server = ServerProcess::start(&[]).await;
    let old = open_session(&server.url, "2025-03-26").await;

    let batch = json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        call(2, "checkin_client", json!({"client_id": "old-client"})),
        {"jsonrpc": "2.0", "id": "three", "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 4, "method": "resources/read", "params": {"uri": "chat://inbox"}},
        call(5, "wait_for_events", json!({"timeout": 0.2})),
        {"jsonrpc": "2.0", "id": 6, "method": "no/such/method"},
        {"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}},
        {"not": "json-rpc"},
    ]);
    let response = post(&server.url, &old, None, &batch.to_string()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answers: Vec<Value> = response.json().await.expect("a JSON array");
    let by_id = |id: Value| {
        answers.iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("no answer for {id} in {answers:?}"))
    };
    assert_eq!(answers.len(), 8, "one answer per request, none for the notification: {answers:?}");
    assert!(by_id(json!(1))["result"].is_object());
    assert_eq!(by_id(json!(2))["result"]["structuredContent"]["client_id"], "old-client");
    assert!(by_id(json!("three"))["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(by_id(json!(4))["result"]["contents"].is_array(), "{answers:?}");
    assert_eq!(by_id(json!(5))["result"]["structuredContent"]["timed_out"], true);
    assert_eq!(by_id(json!(6))["error"]["code"], -32601);
    assert_eq!(by_id(json!(7))["error"]["code"], -32600, "initialize is not allowed in a batch");
    assert_eq!(by_id(Value::Null)["error"]["code"], -32600, "the malformed element");

    // Only notifications and responses: 202, no body.
    let quiet = json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "keepalive-1", "result": {}},
    ]);
    let response = post(&server.url, &old, None, &quiet.to_string()).await;
    assert_eq!(response.status(), 202);
    assert!(response.text().await.expect("body").is_empty());

    // An empty batch is one Invalid Request error (JSON-RPC 2.0), not an array.
    let response = post(&server.url, &old, None, "[]").await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["code"], -32600, "{error}");

    // Later revisions keep refusing batches, with a clear error.
    let new = open_session(&server.url, "2025-06-18").await;
    let response = post(
        &server.url,
        &new,
        Some("2025-06-18"),
        &json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]).to_string(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("batch")), "{error}");
}

/// A blocking tool's SSE answer starts with a priming event (an id, empty data, and
/// `retry:`), and every event on it has an id of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_answers_to_posts_are_primed_and_every_event_has_an_id() {
    let server = ServerProcess::start(&["--progress-interval", "100ms", "--sse-retry", "1500ms"]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    ann.call("checkin_client", json!({"client_id": "ann"})).await;
    let mut seen = Vec::new();
    for request in [
        call(61, "wait_for_events", json!({"timeout": 0.3})),
        with_progress(call(62, "wait_for_events", json!({"timeout": 0.5})), "p-62"),
    ] {
        let response = ann.post_raw(&request.to_string()).await;
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = sse_events(&response.text().await.expect("body"));
        let priming = events.first().expect("a priming event");
        assert!(priming.id.as_deref().is_some_and(|id| !id.is_empty()), "{events:?}");
        assert_eq!(priming.data.as_deref(), Some(""), "the priming event has empty data: {events:?}");
        assert_eq!(priming.retry.as_deref(), Some("1500"), "{events:?}");
        assert!(events.iter().all(|e| e.id.is_some()), "every event has an id: {events:?}");
        let messages: Vec<Value> = events
            .iter()
            .filter_map(|e| e.data.as_deref())
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        assert_eq!(messages.last().map(|m| m["id"].clone()), Some(request["id"].clone()), "{messages:?}");
        if request["params"]["_meta"].is_object() {
            assert!(messages.iter().any(|m| m["method"] == "notifications/progress"), "{messages:?}");
        }
        seen.extend(events.into_iter().filter_map(|e| e.id));
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "event ids are unique within the session: {seen:?}");

    // What answers at once is one JSON message, so no POST stream goes without ids.
    for (id, method) in [(65, "tools/list"), (66, "ping"), (67, "resources/list")] {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method});
        let response = ann.post_raw(&request.to_string()).await;
        assert_eq!(response.headers()["content-type"], "application/json", "{method}");
    }

    // Before 2025-11-25 there is no priming event (older clients may fail to parse its
    // empty data); the events still have ids.
    let old = open_session(&server.url, "2025-06-18").await;
    let checkin = call(63, "checkin_client", json!({"client_id": "old"})).to_string();
    assert_eq!(post(&server.url, &old, Some("2025-06-18"), &checkin).await.status(), 200);
    let wait = call(64, "wait_for_events", json!({"timeout": 0.2})).to_string();
    let response = post(&server.url, &old, Some("2025-06-18"), &wait).await;
    let events = sse_events(&response.text().await.expect("body"));
    assert_eq!(events.len(), 1, "only the answer: {events:?}");
    assert!(events[0].id.is_some() && events[0].retry.is_none(), "{events:?}");
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
        let text = response.text().await.expect("body");
        assert!(text.contains("/mcp"), "the 404 names the endpoint: {text}");
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
