//! A client that never reads notifications (no GET stream at all, like hosts that drop
//! custom notifications) completes a whole chat with `wait_for_events`; resources and
//! their update notifications work for hosts that surface those instead.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{RawSession, STEP, ServerProcess};

fn data(response: &Value) -> Value {
    assert!(response["result"]["isError"] != json!(true), "tool failed: {response}");
    response["result"]["structuredContent"].clone()
}

fn events(value: &Value) -> Vec<Value> {
    value["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_only_clients_chat_with_wait_for_events() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = RawSession::open(&server.url, None).await;
    let mut bob = RawSession::open(&server.url, None).await;

    data(&ann.call("enter_queue", json!({"display_name": "Ann"})).await);
    // Ann blocks in wait_for_events; Bob's arrival wakes her at once.
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let result = data(&ann.call("wait_for_events", json!({"timeout": 20})).await);
        (ann, result, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let matched = data(&bob.call("enter_queue", json!({"display_name": "Bob"})).await);
    let room_id = matched["room_id"].as_str().expect("room").to_owned();
    let (mut ann, first, waited) = tests::within(STEP, "wait_for_events wakes", waiter).await.expect("join");
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    let first = events(&first);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["type"], "chatroom.found");
    assert_eq!(first[0]["room_id"], room_id.as_str());
    let mut ann_cursor = first[0]["seq"].as_u64().expect("seq");

    data(
        &ann.call("send_message", json!({"room_id": room_id, "message": "hi from a tools-only client"}))
            .await,
    );

    // Bob, also tools-only, fetches everything unacknowledged (no cursor) ...
    let got = data(&bob.call("wait_for_events", json!({"timeout": 5})).await);
    let got = events(&got);
    let types: Vec<_> = got.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(types, [json!("chatroom.found"), json!("message.received")]);
    assert_eq!(got[1]["message"], "hi from a tools-only client");
    let bob_cursor = got[1]["seq"].as_u64().expect("seq");
    // ... acknowledges with the cursor, so nothing is returned twice.
    let again = data(&bob.call("wait_for_events", json!({"after_seq": bob_cursor, "timeout": 0})).await);
    assert!(events(&again).is_empty(), "{again}");
    assert_eq!(again["pending_events"], 0);

    data(&bob.call("send_message", json!({"room_id": room_id, "message": "hello back"})).await);
    let reply = data(&ann.call("wait_for_events", json!({"after_seq": ann_cursor, "timeout": 5})).await);
    let reply = events(&reply);
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0]["message"], "hello back");
    ann_cursor = reply[0]["seq"].as_u64().expect("seq");

    data(&ann.call("leave_chat", json!({"room_id": room_id})).await);
    let bye = data(&bob.call("wait_for_events", json!({"after_seq": bob_cursor, "timeout": 5})).await);
    let bye = events(&bye);
    assert_eq!(bye[0]["type"], "partner.disconnected");
    assert_eq!(bye[0]["reason"], "left");
    let rest = data(&ann.call("wait_for_events", json!({"after_seq": ann_cursor, "timeout": 0})).await);
    assert_eq!(rest["pending_events"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_show_inbox_and_room_and_push_updates() {
    let server = ServerProcess::start(&[]).await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({})).await;
    let matched = bob.ok("enter_queue", json!({})).await;
    let room_id = matched["room_id"].as_str().expect("room").to_owned();
    let room_uri = format!("chat://rooms/{room_id}");

    #[allow(deprecated)]
    let subscribe = |uri: String| {
        let peer = ann.peer();
        async move { peer.subscribe(rmcp::model::SubscribeRequestParams::new(uri)).await }
    };
    tests::within(STEP, "subscribe inbox", subscribe("chat://inbox".into())).await.expect("subscribe inbox");
    tests::within(STEP, "subscribe room", subscribe(room_uri.clone())).await.expect("subscribe room");
    let unknown = tests::within(STEP, "subscribe bad", subscribe("chat://nope".into())).await;
    assert!(unknown.is_err(), "unknown URIs are refused");

    let listed = tests::within(STEP, "list resources", ann.peer().list_resources(None)).await.expect("list");
    let uris: Vec<_> = listed.resources.iter().map(|r| r.uri.clone()).collect();
    assert_eq!(uris, ["chat://inbox".to_owned(), room_uri.clone()]);

    bob.ok("send_message", json!({"room_id": room_id, "message": "resource test"})).await;
    let mut updated = Vec::new();
    for _ in 0..2 {
        updated.push(ann.next("notifications/resources/updated", STEP).await["uri"].clone());
    }
    updated.sort_by_key(|v| v.to_string());
    assert_eq!(updated, [json!("chat://inbox"), json!(room_uri)]);

    let read = tests::within(
        STEP,
        "read room",
        ann.peer().read_resource(rmcp::model::ReadResourceRequestParams::new(room_uri.clone())),
    )
    .await
    .expect("read");
    let text = serde_json::to_string(&read.contents).expect("json");
    assert!(text.contains("resource test"), "{text}");
    let foreign = tests::within(
        STEP,
        "read someone else's room",
        bob.peer()
            .read_resource(rmcp::model::ReadResourceRequestParams::new("chat://rooms/r_0000000000000000")),
    )
    .await;
    assert!(foreign.is_err());
}
