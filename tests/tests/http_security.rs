//! Security and robustness: bearer token, DNS-rebinding and Origin checks, identity
//! spoofing, input validation, and a flood of malformed JSON-RPC bodies.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tests::{RawSession, STEP, ServerProcess, TestClient, http, raw_post, rpc_messages, within};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"sec","version":"1"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_everywhere() {
    let server = ServerProcess::start(&["--auth-token", "s3cret-token"]).await;
    for path in ["/healthz", "/metrics", "/mcp"] {
        let url = format!("{}{path}", server.base);
        let missing = http().get(&url).send().await.expect("request");
        assert_eq!(missing.status(), 401, "{path} without token");
        assert!(missing.headers().get("www-authenticate").is_some());
        let wrong = http().get(&url).bearer_auth("s3cret-tokem").send().await.expect("request");
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
    }
    let init = raw_post(&server.url, None, None, INIT).await;
    assert_eq!(init.status(), 401);
    let init = raw_post(&server.url, Some("nope"), None, INIT).await;
    assert_eq!(init.status(), 401);
    assert!(TestClient::try_connect(&server.url, None).await.is_err(), "rmcp client without token must fail");

    // With the token everything works.
    assert_eq!(server.get("/healthz").await.expect("healthz").status(), 200);
    let client = server.client().await;
    client.ok("enter_queue", json!({})).await;
    let metrics = server.get("/metrics").await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("mcp_chat_http_rejected_total{reason=\"unauthorized\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origin_and_host_are_forbidden() {
    let server = ServerProcess::start(&[]).await;
    let post = |origin: Option<&'static str>, host: Option<&'static str>| {
        let mut request = http()
            .post(&server.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INIT);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send()
    };
    assert_eq!(post(Some("https://evil.example"), None).await.expect("post").status(), 403);
    assert_eq!(post(Some("null"), None).await.expect("post").status(), 403);
    assert_eq!(post(None, Some("evil.example")).await.expect("post").status(), 403);
    assert_eq!(post(None, Some("attacker.test:8123")).await.expect("post").status(), 403);
    assert_eq!(post(Some("http://localhost:5173"), None).await.expect("post").status(), 200);
    assert_eq!(post(None, Some("localhost")).await.expect("post").status(), 200);
    let health =
        http().get(format!("{}/healthz", server.base)).header("origin", "https://evil.example").send().await;
    assert_eq!(health.expect("healthz").status(), 403, "/healthz is protected too");

    let custom = ServerProcess::start(&[
        "--allowed-origin",
        "https://chat.example.com",
        "--allowed-host",
        "127.0.0.1",
    ])
    .await;
    let post = |origin: &'static str| {
        http()
            .post(&custom.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("origin", origin)
            .body(INIT)
            .send()
    };
    assert_eq!(post("https://chat.example.com").await.expect("post").status(), 200);
    assert_eq!(post("http://localhost:3000").await.expect("post").status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_and_rooms_cannot_be_borrowed() {
    let server = ServerProcess::start(&[]).await;
    let ann = server.client().await;
    let bob = server.client().await;
    let eve = server.client().await;
    let entered = ann.ok("enter_queue", json!({"user_id": "ann"})).await;
    let matched = bob.ok("enter_queue", json!({"user_id": "bob"})).await;
    let room_id = matched["room_id"].as_str().expect("room").to_owned();

    // Eve cannot take Ann's live identity without the token, by any door.
    let taken = eve.err("enter_queue", json!({"user_id": "ann"})).await;
    assert_eq!(taken["error"], "identity_taken", "{taken}");
    let taken = eve.err("checkin_client", json!({"client_id": "ann"})).await;
    assert_eq!(taken["error"], "identity_taken", "{taken}");
    let bad = eve
        .err(
            "resume_session",
            json!({"user_id": "ann", "resume_token": "rt_00000000000000000000000000000000"}),
        )
        .await;
    assert_eq!(bad["error"], "bad_resume_token");
    let spoof = eve
        .err("send_message", json!({"sender_id": "ann", "recipient_id": "bob", "message": "I am Ann"}))
        .await;
    assert_eq!(spoof["error"], "identity_taken", "{spoof}");

    // Eve, with an identity of her own, cannot use their room.
    eve.ok("checkin_client", json!({"client_id": "eve"})).await;
    for (tool, args) in [
        ("send_message", json!({"room_id": room_id, "message": "hi"})),
        ("get_history", json!({"room_id": room_id})),
        ("leave_chat", json!({"room_id": room_id})),
        ("set_typing", json!({"room_id": room_id})),
        ("block_partner", json!({"room_id": room_id})),
    ] {
        let refused = eve.err(tool, args).await;
        assert_eq!(refused["error"], "unknown_room", "{tool}: {refused}");
    }
    let spoof = eve
        .err("send_message", json!({"sender_id": "ann", "recipient_id": "bob", "message": "I am Ann"}))
        .await;
    assert_eq!(spoof["error"], "identity_mismatch");
    bob.none("message.received", Duration::from_millis(300)).await;

    // The token does work for its owner, from a new session.
    let ann2 = server.client().await;
    let resumed =
        ann2.ok("resume_session", json!({"user_id": "ann", "resume_token": entered["resume_token"]})).await;
    assert_eq!(resumed["room_id"], room_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_actionable_errors() {
    let server = ServerProcess::start(&["--max-message-bytes", "1000", "--max-request-bytes", "8192"]).await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({})).await;
    let room_id = bob.ok("enter_queue", json!({})).await["room_id"].as_str().expect("room").to_owned();

    let cases = [
        (json!({"room_id": room_id, "message": "x".repeat(1001)}), "message_too_large"),
        (json!({"room_id": room_id, "message": "   \n "}), "empty_message"),
        (json!({"room_id": room_id, "message": "red \u{1b}[31malert"}), "invalid_text"),
        (json!({"room_id": room_id, "message": "bell\u{7}"}), "invalid_text"),
        (json!({"message": "no target"}), "invalid_arguments"),
        (json!({"room_id": room_id, "recipient_id": "bob", "message": "both"}), "invalid_arguments"),
        (json!({"room_id": "r_nope", "message": "hi"}), "unknown_room"),
    ];
    for (args, code) in cases {
        let err = ann.err("send_message", args.clone()).await;
        assert_eq!(err["error"], code, "{args}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| m.len() > 10), "{err}");
    }
    let long_name = ann.err("checkin_client", json!({"client_id": "ok-id", "name": "n".repeat(200)})).await;
    assert_eq!(long_name["error"], "invalid_text", "{long_name}");
    let fresh = server.client().await;
    let bad_id = fresh.err("enter_queue", json!({"user_id": "has space"})).await;
    assert_eq!(bad_id["error"], "invalid_id", "{bad_id}");
    // Missing or mistyped arguments are tool errors too, not protocol failures.
    let missing = ann.call("send_message", json!({"room_id": room_id})).await;
    assert!(missing.is_error);
    assert!(missing.text.contains("message"), "{}", missing.text);
    let mistyped = ann.call("leave_chat", json!({"room_id": 7})).await;
    assert!(mistyped.is_error, "{}", mistyped.text);

    // A body beyond --max-request-bytes is refused before parsing.
    let session = RawSession::open(&server.url, None).await;
    let huge = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "send_message", "arguments": {"room_id": room_id, "message": "y".repeat(20_000)}}});
    assert_eq!(session.post_raw(&huge.to_string()).await.status(), 413);
    // Nothing reached Bob.
    bob.none("message.received", Duration::from_millis(300)).await;
}

/// A tiny deterministic generator (xorshift64*), so failures are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth > 2 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => json!(-1.5e300),
            4 => json!(self.pick(&["", "r_0000000000000000", "\u{0}", "💬", "a\u{1b}b", "after_seq", "-1"])),
            5 => Value::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
            _ => {
                let keys = [
                    "room_id",
                    "recipient_id",
                    "message",
                    "user_id",
                    "timeout",
                    "after_seq",
                    "limit",
                    "peek",
                    "client_id",
                    "x",
                ];
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    map.insert(self.pick(&keys).to_owned(), self.json(depth + 1));
                }
                Value::Object(map)
            }
        }
    }
    fn body(&mut self) -> String {
        let tools = [
            "enter_queue",
            "send_message",
            "leave_chat",
            "set_typing",
            "get_history",
            "checkin_client",
            "get_messages",
            "resume_session",
            "list_clients",
            "nope",
            "",
        ];
        let methods = [
            "tools/call",
            "tools/list",
            "resources/read",
            "resources/subscribe",
            "ping",
            "initialize",
            "notifications/cancelled",
            "x/y",
            "",
        ];
        match self.below(7) {
            // Random bytes (often invalid UTF-8).
            0 => (0..self.below(64)).map(|_| char::from(self.below(256) as u8)).collect(),
            // A valid message cut short.
            1 => {
                let full = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_message","arguments":{"message":"hi"}}}).to_string();
                full[..self.below(full.len())].to_owned()
            }
            // Random JSON, any shape.
            2 => self.json(0).to_string(),
            // Wrong JSON-RPC envelope.
            3 => json!({"jsonrpc": self.json(2), "id": self.json(2), "method": self.json(2), "params": self.json(1)}).to_string(),
            // Known methods with random params.
            4 => json!({"jsonrpc":"2.0","id":self.below(1000),"method":self.pick(&methods),"params":self.json(0)}).to_string(),
            // Tool calls with random arguments (never long waits: those tools get timeout 0).
            5 => {
                let mut args = self.json(0);
                if let Value::Object(map) = &mut args {
                    map.insert("timeout".into(), json!(0));
                }
                json!({"jsonrpc":"2.0","id":self.below(1000),"method":"tools/call",
                    "params":{"name":self.pick(&tools),"arguments":args}}).to_string()
            }
            // Responses and notifications nobody asked for.
            _ => json!({"jsonrpc":"2.0","id":self.below(9),"result":self.json(1)}).to_string(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_malformed_bodies_do_not_hurt() {
    let server = ServerProcess::start(&[]).await;
    let session = RawSession::open(&server.url, None).await;
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let bodies: Vec<(bool, String)> = (0..1000).map(|i| (i % 4 != 0, rng.body())).collect();
    let url = server.url.clone();
    let id = session.id.clone();
    let statuses: Vec<(u16, String, String)> = within(
        Duration::from_secs(120),
        "1000 malformed requests",
        futures::stream::iter(bodies)
            .map(|(in_session, body)| {
                let (url, id) = (url.clone(), id.clone());
                async move {
                    let response = raw_post(&url, None, in_session.then_some(id.as_str()), &body).await;
                    let status = response.status().as_u16();
                    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or_default();
                    (status, body, text)
                }
            })
            .buffer_unordered(16)
            .collect(),
    )
    .await;
    let mut parse_errors = 0;
    for (status, body, text) in &statuses {
        assert!(*status < 500, "HTTP {status} for body {body:?}: {text}");
        if *status == 400 && text.starts_with('{') {
            let error: Value = serde_json::from_str(text).expect("JSON-RPC error body");
            assert_eq!(error["jsonrpc"], "2.0");
            let code = error["error"]["code"].as_i64().expect("error code");
            assert!([-32700, -32600, -32602].contains(&code), "{text}");
            parse_errors += usize::from(code == -32700);
        }
    }
    assert!(parse_errors > 50, "expected many parse errors, got {parse_errors}");

    // Malformed JSON-RPC gets JSON-RPC errors.
    let response = session.post_raw("{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": ").await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["code"], -32700);
    let response =
        session.post_raw(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":5}}"#).await;
    let error = rpc_messages(&response.text().await.expect("text"));
    assert_eq!(error[0]["error"]["code"], -32602, "{error:?}");
    assert_eq!(error[0]["id"], "a");
    let message = error[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("tools/call"), "{message}");
    let unknown = session.post_raw(r#"{"jsonrpc":"2.0","id":9,"method":"chat/unknown","params":{}}"#).await;
    let unknown = rpc_messages(&unknown.text().await.expect("text"));
    assert_eq!(unknown[0]["error"]["code"], -32601, "{unknown:?}");

    // The server still serves.
    assert_eq!(server.get("/healthz").await.expect("healthz").status(), 200);
    // (The storm may have queued some random identities, so use direct messages.)
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("checkin_client", json!({"client_id": "after-the-storm-1"})).await;
    bob.ok("checkin_client", json!({"client_id": "after-the-storm-2"})).await;
    bob.ok("send_message", json!({"recipient_id": "after-the-storm-1", "message": "still alive"})).await;
    assert_eq!(ann.next("message.received", STEP).await["message"], "still alive");
}
