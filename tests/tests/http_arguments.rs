//! Tool arguments as hosts really send them: unknown names are refused with the valid
//! ones listed (never silently dropped), and scalars sent as strings are read as the
//! type the input schema declares.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{STEP, ServerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_arguments_are_refused_with_the_valid_names() {
    let server = ServerProcess::start(&[]).await;
    let ann = server.client().await;
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;

    // A model that guesses `timeout_seconds` is told at once, not left waiting 25 s for
    // the default timeout.
    let started = Instant::now();
    let outcome = ann.call("wait_for_events", json!({"timeout_seconds": 1})).await;
    assert!(started.elapsed() < Duration::from_secs(5), "answered at once: {:?}", started.elapsed());
    assert!(outcome.is_error, "refused: {}", outcome.text);
    assert_eq!(outcome.data["error"], "invalid_arguments", "{}", outcome.data);
    let message = outcome.data["message"].as_str().unwrap_or_default();
    for part in ["`timeout_seconds`", "did you mean `timeout`?", "`after_seq`", "`limit`"] {
        assert!(message.contains(part), "{part:?} missing from {message:?}");
    }
    assert!(outcome.text.starts_with("Error: "), "{}", outcome.text);

    // Several at once, on a tool with a required argument; nothing is sent.
    let refused = ann
        .err("send_message", json!({"recipient_id": "bob", "message": "hi", "text": "hi", "roomId": "r_1"}))
        .await;
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("`roomId`") && message.contains("`text`"), "{message}");
    assert!(message.contains("did you mean `room_id`?"), "{message}");
    assert!(message.contains("`message` (required)"), "{message}");
    let bob = server.client().await;
    let mail = bob.ok("get_messages", json!({"client_id": "bob"})).await;
    assert_eq!(mail["messages"], json!([]), "the refused message was not sent: {mail}");

    // Tools without arguments of their own name the one every tool takes, `handle`.
    let refused = ann.err("leave_queue", json!({"force": true})).await;
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("`force`") && message.contains("Its arguments are `handle`"), "{message}");
    ann.ok("leave_queue", json!({})).await;

    // A wrong type names the argument and the type it needs.
    let refused = ann.err("wait_for_events", json!({"limit": "lots"})).await;
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("`limit`") && message.contains("integer"), "{message}");
}

fn schema_types(tool: &Value, argument: &str) -> Value {
    tool["inputSchema"]["properties"][argument]["type"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalar_arguments_sent_as_strings_are_read_as_their_types() {
    let server = ServerProcess::start(&[]).await;
    let ann = server.client().await;

    // tools/list still declares the real types.
    let tools = tests::within(STEP, "tools/list", ann.peer().list_all_tools()).await.expect("tools/list");
    let tools = serde_json::to_value(&tools).expect("json");
    let tool = |name: &str| tools.as_array().and_then(|l| l.iter().find(|t| t["name"] == name)).cloned();
    let get_messages = tool("get_messages").expect("get_messages");
    assert_eq!(schema_types(&get_messages, "limit"), json!(["integer", "null"]));
    assert_eq!(schema_types(&get_messages, "peek"), json!(["boolean", "null"]));

    // Integers and booleans, in any case, with spaces; "" counts as omitted.
    let carol = server.client().await;
    carol.ok("checkin_client", json!({"client_id": "carol"})).await;
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    for text in ["one", "two", "three"] {
        ann.ok("send_message", json!({"recipient_id": "carol", "message": text})).await;
    }
    let peeked = carol.ok("get_messages", json!({"peek": "true"})).await;
    assert_eq!(peeked["messages"].as_array().map(Vec::len), Some(3), "{peeked}");
    let first = carol.ok("get_messages", json!({"limit": " 1 ", "peek": "False"})).await;
    assert_eq!(first["messages"].as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(first["remaining"], 2, "{first}");
    let rest = carol.ok("get_messages", json!({"limit": ""})).await;
    assert_eq!(rest["messages"].as_array().map(Vec::len), Some(2), "{rest}");
    let events = carol.ok("wait_for_events", json!({"after_seq": "0", "timeout": "0.1", "limit": "5"})).await;
    assert!(events["events"].is_array(), "{events}");

    // Booleans that change what happens, and a list sent as JSON text.
    let dan = server.client().await;
    let eve = server.client().await;
    dan.ok("enter_queue", json!({"interests": "[\"rust\", \"chess\"]"})).await;
    let matched = eve.ok("enter_queue", json!({"interests": "[\"chess\"]"})).await;
    assert_eq!(matched["shared_interests"], json!(["chess"]), "{matched}");
    let room = matched["room_id"].as_str().expect("room").to_owned();
    let typing = eve.ok("set_typing", json!({"room_id": room, "typing": "false"})).await;
    assert_eq!(typing["typing"], false, "{typing}");
    let left = eve.ok("leave_chat", json!({"room_id": room, "requeue": "true"})).await;
    assert_eq!(left["requeued"]["status"], "waiting", "{left}");
}
