//! A network outage between a real rmcp client and the server (a proxy that drops every
//! connection and refuses new ones): the client carries on with the same session
//! afterwards, its partner hears `partner.reconnecting` / `partner.reconnected` and never
//! `partner.disconnected`, and nothing sent during the outage is lost.

use std::time::Duration;

use serde_json::json;
use tests::{NetworkCut, STEP, ServerProcess, TestClient};

async fn outage(length: Duration) {
    let server = ServerProcess::start(&["--stream-grace", "1s", "--reconnect-grace", "30s"]).await;
    let proxy = NetworkCut::start(server.addr).await;
    // A client of its own (not the shared pool), so the cut really breaks its connections.
    let ann = TestClient::connect(&proxy.url(), None).await;
    ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    let bob = server.client().await;
    let room = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let room_id = room["room_id"].as_str().expect("room").to_owned();
    ann.next("chatroom.found", STEP).await;

    proxy.cut();
    bob.next("partner.reconnecting", STEP).await;
    let sent = bob.ok("send_message", json!({"room_id": room_id, "message": "did you drop?"})).await;
    tokio::time::sleep(length).await;
    proxy.restore();

    // The same session is served: no 404, the same identity, the same room.
    let me = ann.ok("get_my_identity", json!({})).await;
    assert_eq!(
        (me["state"].as_str(), me["room_id"].as_str()),
        (Some("chatting"), Some(room_id.as_str())),
        "{me}"
    );
    bob.next("partner.reconnected", STEP).await;
    // What Bob sent during the outage reaches Ann (pushed once her stream is back, and in
    // her inbox either way).
    let events = ann.ok("wait_for_events", json!({"timeout": 5})).await;
    let got =
        events["events"].as_array().into_iter().flatten().any(|e| e["message_id"] == sent["message_id"]);
    assert!(got, "the message sent during the outage is there: {events}");
    ann.ok("send_message", json!({"room_id": room_id, "message": "back"})).await;
    let back = bob.next("message.received", STEP).await;
    assert_eq!(back["message"], "back");
    bob.none("partner.disconnected", Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_outage_changes_nothing() {
    outage(Duration::from_millis(2500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_second_outage_is_survived() {
    outage(Duration::from_secs(20)).await;
}
