//! Chat roulette end to end, against the real binary over real HTTP with rmcp's client:
//! matching, messages both ways, typing, leaving, and "next" with a third client.

use serde_json::{Value, json};
use tests::{STEP, server_with_clients};

/// Replaces the random parts of a payload so snapshots are stable.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::assert_json_snapshot!($name, $value, {
            ".room_id" => "[room_id]",
            ".message_id" => "[message_id]",
            ".timestamp" => "[timestamp]",
            ".partner.user_id" => "[user_id]",
            ".from" => "[user_id]",
        })
    };
}

fn room(v: &Value) -> String {
    v["room_id"].as_str().expect("room_id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_strangers_chat_then_one_moves_on() {
    let (_server, clients) = server_with_clients(&[], 3).await;
    let [ann, bob, cid] = <[_; 3]>::try_from(clients).ok().expect("three clients");

    let waiting = ann.ok("enter_queue", json!({"display_name": "Ann", "interests": ["rust"]})).await;
    assert_eq!(waiting["status"], "waiting");
    assert_eq!(waiting["position"], 1);
    assert!(waiting["resume_token"].as_str().is_some_and(|t| t.starts_with("rt_")));
    let ann_id = waiting["user_id"].as_str().expect("user_id").to_owned();

    let matched = bob.ok("enter_queue", json!({"display_name": "Bob", "interests": "Rust, music"})).await;
    assert_eq!(matched["status"], "matched");
    assert_eq!(matched["partner"]["user_id"], ann_id.as_str());

    let found_ann = ann.next("chatroom.found", STEP).await;
    let found_bob = bob.next("chatroom.found", STEP).await;
    assert_eq!(room(&found_ann), room(&found_bob));
    assert_eq!(room(&found_ann), room(&matched));
    assert_eq!(found_bob["partner"]["user_id"], ann_id.as_str());
    snapshot!("roulette_chatroom_found_ann", &found_ann);
    snapshot!("roulette_chatroom_found_bob", &found_bob);
    let room_id = room(&found_ann);

    let sent =
        ann.ok("send_message", json!({"room_id": room_id, "message": "Hi Bob! How is it going?"})).await;
    assert_eq!(sent["room_id"], room_id.as_str());
    let received = bob.next("message.received", STEP).await;
    assert_eq!(received["message_id"], sent["message_id"]);
    assert_eq!(received["from"], ann_id.as_str());
    snapshot!("roulette_message_to_bob", &received);

    bob.ok("send_message", json!({"room_id": room_id, "message": "Great, thanks.\nAnd you?"})).await;
    let reply = ann.next("message.received", STEP).await;
    snapshot!("roulette_message_to_ann", &reply);

    let typing = bob.ok("set_typing", json!({"room_id": room_id})).await;
    assert_eq!(typing["notified"], true);
    let seen = ann.next("partner.typing", STEP).await;
    assert_eq!(seen["typing"], true);
    assert_eq!(seen["room_id"], room_id.as_str());

    let history = ann.ok("get_history", json!({"room_id": room_id})).await;
    let texts: Vec<_> =
        history["messages"].as_array().expect("messages").iter().map(|m| m["message"].clone()).collect();
    assert_eq!(texts, [json!("Hi Bob! How is it going?"), json!("Great, thanks.\nAnd you?")]);

    let left = ann.ok("leave_chat", json!({"room_id": room_id, "requeue": true})).await;
    assert_eq!(left["was_active"], true);
    assert_eq!(left["requeued"]["status"], "waiting");
    let gone = bob.next("partner.disconnected", STEP).await;
    snapshot!("roulette_partner_left", &gone);
    assert_eq!(gone["reason"], "left");

    // Bob can no longer write to the ended room.
    let refused = bob.err("send_message", json!({"room_id": room_id, "message": "hello?"})).await;
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("enter_queue")), "{refused}");

    // A third person arrives and is paired with Ann, who asked for the next partner.
    let cid_match = cid.ok("enter_queue", json!({"display_name": "Cid", "interests": ["rust"]})).await;
    assert_eq!(cid_match["status"], "matched");
    assert_eq!(cid_match["partner"]["user_id"], ann_id.as_str());
    let next_room = ann.next("chatroom.found", STEP).await;
    assert_eq!(next_room["partner"]["display_name"], "Cid");
    assert_ne!(room(&next_room), room_id);

    // Every push carried a seq, strictly increasing per participant.
    let events = ann.ok("wait_for_events", json!({"timeout": 0})).await;
    let seqs: Vec<u64> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(events["pending_events"].as_u64(), Some(seqs.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_results_report_pending_events() {
    let (_server, clients) = server_with_clients(&[], 2).await;
    let [ann, bob] = <[_; 2]>::try_from(clients).ok().expect("two clients");
    ann.ok("enter_queue", json!({})).await;
    bob.ok("enter_queue", json!({})).await;
    let found = ann.next("chatroom.found", STEP).await;
    let room_id = room(&found);
    bob.ok("send_message", json!({"room_id": room_id, "message": "one"})).await;
    ann.next("message.received", STEP).await;
    let identity = ann.call("get_my_identity", json!({})).await;
    assert_eq!(identity.data["pending_events"], 2, "{}", identity.text);
    assert!(identity.text.contains("2 unacknowledged event(s)"), "{}", identity.text);
    // Acknowledging everything clears the count.
    let newest = identity.data["last_seq"].as_u64().expect("last_seq");
    let events = ann.ok("wait_for_events", json!({"after_seq": newest, "timeout": 0})).await;
    assert_eq!(events["pending_events"], 0);
}
