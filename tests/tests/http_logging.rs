//! The `logging` capability: `logging/setLevel` per session, and `notifications/message`
//! for what the server does on a session's behalf.
#![allow(deprecated)] // logging is "legacy-only" in rmcp 3.9 but current for 2025-11-25 servers.

use std::time::Duration;

use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use serde_json::{Value, json};
use tests::{RawSession, STEP, ServerProcess, TestClient, rpc_messages};

/// How long a test waits to be sure a message does not come.
const QUIET: Duration = Duration::from_millis(700);

async fn set_level(client: &TestClient, level: LoggingLevel) {
    let request = client.peer().set_level(SetLevelRequestParams::new(level));
    tests::within(STEP, "logging/setLevel", request).await.expect("logging/setLevel is served");
}

fn text(message: &Value) -> String {
    message["data"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_are_set_per_session_and_filter_messages() {
    let server = ServerProcess::start(&[]).await;
    let ann = server.client().await;
    let info = ann.peer().peer_info().expect("server info");
    assert!(info.capabilities.logging.is_some(), "logging is announced: {:?}", info.capabilities);
    assert!(info.capabilities.completions.is_none() && info.capabilities.prompts.is_none());
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    let bob = server.client().await;
    bob.ok("checkin_client", json!({"client_id": "bob"})).await;

    // At debug, a converted argument is reported to the session that sent it.
    set_level(&ann, LoggingLevel::Debug).await;
    ann.ok("get_messages", json!({"limit": "5"})).await;
    let message = ann.next("notifications/message", STEP).await;
    assert_eq!(message["level"], "debug", "{message}");
    assert_eq!(message["logger"], "mcp-chat", "{message}");
    assert!(text(&message).contains("`limit`"), "{message}");
    assert_eq!(message["data"]["argument"], "limit", "{message}");
    assert_eq!(message["data"]["read"], 5, "{message}");

    // Bob never set a level: the default (warning) hides debug messages.
    bob.ok("get_messages", json!({"limit": "5"})).await;
    bob.none("notifications/message", QUIET).await;

    // A higher level hides them from Ann too; info shows an implicit check-in.
    set_level(&ann, LoggingLevel::Error).await;
    ann.ok("get_messages", json!({"limit": "5"})).await;
    ann.none("notifications/message", QUIET).await;
    let carol = server.client().await;
    set_level(&carol, LoggingLevel::Info).await;
    carol.ok("send_message", json!({"recipient_id": "ann", "message": "hi", "sender_id": "carol"})).await;
    let message = carol.next("notifications/message", STEP).await;
    assert_eq!(message["level"], "info", "{message}");
    assert!(text(&message).contains("carol"), "{message}");

    // Over raw HTTP: the empty result, and -32602 for a level that does not exist.
    let raw = RawSession::open(&server.url, None).await;
    let body =
        json!({"jsonrpc": "2.0", "id": 5, "method": "logging/setLevel", "params": {"level": "notice"}});
    let answer = rpc_messages(&raw.post_raw(&body.to_string()).await.text().await.expect("body"));
    assert_eq!(answer.first().map(|m| m["result"].clone()), Some(json!({})), "{answer:?}");
    let body =
        json!({"jsonrpc": "2.0", "id": 6, "method": "logging/setLevel", "params": {"level": "verbose"}});
    let answer = rpc_messages(&raw.post_raw(&body.to_string()).await.text().await.expect("body"));
    assert_eq!(answer.first().map(|m| m["error"]["code"].clone()), Some(json!(-32602)), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_inbox_is_logged_as_a_warning() {
    let server = ServerProcess::start(&["--event-buffer", "2"]).await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({})).await;
    let room = bob.ok("enter_queue", json!({})).await;
    for n in 0..4 {
        bob.ok("send_message", json!({"room_id": room["room_id"], "message": format!("message {n}")})).await;
    }
    // The default level shows warnings without any setLevel.
    let got = ann.ok("wait_for_events", json!({"timeout": 0})).await;
    let evicted = got["evicted"].as_u64().unwrap_or_default();
    assert!(evicted > 0, "{got}");
    let message = ann.next("notifications/message", STEP).await;
    assert_eq!(message["level"], "warning", "{message}");
    assert_eq!(message["data"]["evicted"], evicted, "{message}");
    assert!(text(&message).contains("wait_for_events"), "{message}");
}
