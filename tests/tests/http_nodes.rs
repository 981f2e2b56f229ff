//! Several nodes on one Redis (`--store redis://`): the real binary three times, a real
//! `redis-server` (started by each test on a free port, see `tests/src/redis.rs`), rmcp
//! clients and raw sessions. Any node serves any session; a node's death, a node that
//! starts late and a Redis restart lose nothing.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{NetworkCut, RawSession, RedisServer, STEP, ServerProcess, TestClient, within};

/// Flags for a node of the chat in `redis`: fast heartbeats so a dead node is given up
/// within a second, and a stream grace long enough for a client to move to another node.
fn node_args(redis: &RedisServer, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--store", &redis.url, "--node-heartbeat", "200ms", "--node-timeout", "1s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--stream-grace", "5s", "--redis-timeout", "1s"].iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn node(redis: &RedisServer, extra: &[&str]) -> ServerProcess {
    let args = node_args(redis, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(&args).await
}

fn room(v: &Value) -> String {
    v["room_id"].as_str().expect("room_id").to_owned()
}

/// Two clients paired in a room; returns the room id.
async fn pair(ann: &TestClient, bob: &TestClient) -> String {
    ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let room_id = room(&ann.next("chatroom.found", STEP).await);
    assert_eq!(room(&bob.next("chatroom.found", STEP).await), room_id);
    room_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_one_chat() {
    let redis = RedisServer::start().await;
    let (n1, n2, n3) = (node(&redis, &[]).await, node(&redis, &[]).await, node(&redis, &[]).await);

    // Two users entering the queue through different nodes are paired, and chat.
    let ann = n1.client().await;
    let bob = n2.client().await;
    let room_id = pair(&ann, &bob).await;
    ann.ok("send_message", json!({"room_id": room_id, "message": "hi from node 1"})).await;
    assert_eq!(bob.next("message.received", STEP).await["message"], "hi from node 1");
    bob.ok("send_message", json!({"room_id": room_id, "message": "hi from node 2"})).await;
    assert_eq!(ann.next("message.received", STEP).await["message"], "hi from node 2");

    // A direct message from a client on node 3 reaches one on node 1.
    let carol = n1.client().await;
    carol.ok("checkin_client", json!({"client_id": "carol"})).await;
    let dave = n3.client().await;
    dave.ok("checkin_client", json!({"client_id": "dave"})).await;
    dave.ok("send_message", json!({"recipient_id": "carol", "message": "across nodes"})).await;
    let pushed = carol.next("message.received", STEP).await;
    assert_eq!(pushed["message"], "across nodes", "{pushed}");
    let mail = carol.ok("get_messages", json!({})).await;
    assert_eq!(mail["messages"][0]["from"], "dave", "{mail}");
    let clients = dave.ok("list_clients", json!({})).await;
    assert!(clients.to_string().contains("carol"), "node 3 lists a client of node 1: {clients}");

    // A session opened on node 1 is served by node 2 and node 3 too.
    let mut eve = RawSession::open(&n1.url, None).await;
    let checked = eve.call("checkin_client", json!({"client_id": "eve"})).await;
    assert_ne!(checked["result"]["isError"], true, "{checked}");
    for other in [&n2, &n3] {
        let mut there = eve.via(&other.url);
        let identity = there.call("get_my_identity", json!({})).await;
        assert_eq!(identity["result"]["structuredContent"]["user_id"], "eve", "{identity}");
    }
    let mut on_n3 = eve.via(&n3.url);
    let sent =
        on_n3.call("send_message", json!({"recipient_id": "carol", "message": "eve via node 3"})).await;
    assert_ne!(sent["result"]["isError"], true, "{sent}");
    assert_eq!(carol.next("message.received", STEP).await["message"], "eve via node 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing_and_its_clients_go_on_through_another() {
    node_goes_away(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_ends_no_room_and_its_clients_go_on_through_another() {
    node_goes_away(false).await;
}

/// Node 1, which holds Ann's stream, dies (`crash`: SIGKILL) or is stopped (SIGTERM).
async fn node_goes_away(crash: bool) {
    let redis = RedisServer::start().await;
    let mut n1 = node(&redis, &[]).await;
    let n2 = node(&redis, &[]).await;
    // Ann reaches the chat through a load balancer that sends her to node 1.
    let balancer = NetworkCut::start(n1.addr).await;
    let ann = TestClient::connect(&balancer.url(), None).await;
    let bob = n2.client().await;
    let room_id = pair(&ann, &bob).await;
    let before = ann.ok("get_my_identity", json!({})).await;
    bob.ok("send_message", json!({"room_id": room_id, "message": "m0"})).await;
    assert_eq!(ann.next("message.received", STEP).await["message"], "m0");

    // Node 1 (holding Ann's stream) goes; the balancer sends her to node 2 from now on.
    if crash {
        n1.kill().await;
    } else {
        let status = n1.terminate(Duration::from_secs(15)).await;
        assert!(status.success(), "a stopped node exits 0: {status:?}");
    }
    balancer.switch_to(n2.addr);
    for i in 1..=5 {
        bob.ok("send_message", json!({"room_id": room_id, "message": format!("m{i}")})).await;
    }
    // Every message reaches Ann once, in order (by seq: rmcp's client hands a burst of
    // notifications to its handler concurrently), on the same session.
    let mut got = Vec::new();
    for _ in 1..=5 {
        let message = ann.next("message.received", STEP).await;
        got.push((
            message["seq"].as_u64().expect("seq"),
            message["message"].as_str().expect("text").to_owned(),
        ));
    }
    ann.none("message.received", Duration::from_millis(500)).await;
    got.sort();
    let texts: Vec<&str> = got.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(texts, ["m1", "m2", "m3", "m4", "m5"], "{got:?}");
    assert!(got.windows(2).all(|w| w[1].0 == w[0].0 + 1), "consecutive seqs, nothing missing: {got:?}");
    let after = ann.ok_eventually("get_my_identity", json!({})).await;
    assert_eq!(after["user_id"], before["user_id"], "the same identity, no new session: {after}");
    assert_eq!(after["state"], "chatting", "{after}");
    ann.ok_eventually("send_message", json!({"room_id": room_id, "message": "still here"})).await;
    assert_eq!(bob.next("message.received", STEP).await["message"], "still here");
    // Node 1's streams are given up after --node-timeout; Ann's is on node 2 by then, so
    // nobody was told anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    bob.none("partner.reconnecting", Duration::from_millis(10)).await;
    bob.none("partner.disconnected", Duration::from_millis(10)).await;
    ann.none("partner.disconnected", Duration::from_millis(10)).await;
    ann.none("partner.reconnecting", Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_come_back_is_lost_after_its_node_dies() {
    let redis = RedisServer::start().await;
    let mut n1 = node(&redis, &["--stream-grace", "500ms", "--reconnect-grace", "1s"]).await;
    let n2 = node(&redis, &["--stream-grace", "500ms", "--reconnect-grace", "1s"]).await;
    let ann = n1.client().await;
    let bob = n2.client().await;
    let room_id = pair(&ann, &bob).await;
    n1.kill().await;
    // Nobody serves Ann any more: node 1 is given up (1 s), her stream grace and
    // reconnect grace run out, and Bob is told, by the replicated core itself.
    let reconnecting = bob.next("partner.reconnecting", STEP).await;
    assert_eq!(room(&reconnecting), room_id);
    let gone = bob.next("partner.disconnected", STEP).await;
    assert_eq!(gone["reason"], "timeout", "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_catches_up_and_serves() {
    let redis = RedisServer::start().await;
    // Snapshots every few entries, so the late node starts from one plus the log tail.
    let n1 = node(&redis, &["--snapshot-every", "5"]).await;
    let ann = n1.client().await;
    let bob = n1.client().await;
    let room_id = pair(&ann, &bob).await;
    for i in 0..12 {
        ann.ok("send_message", json!({"room_id": room_id, "message": format!("early {i}")})).await;
    }
    let carol_token = n1.known_client("carol").await;
    let dave = n1.client().await;
    dave.ok("checkin_client", json!({"client_id": "dave"})).await;
    dave.ok("send_message", json!({"recipient_id": "carol", "message": "for later"})).await;

    let n2 = node(&redis, &["--snapshot-every", "5"]).await;
    let carol = n2.client().await;
    carol.ok("checkin_client", json!({"client_id": "carol", "resume_token": carol_token})).await;
    let mail = carol.ok("get_messages", json!({})).await;
    assert_eq!(mail["messages"][0]["message"], "for later", "{mail}");
    // Bob's room history, read through the new node by a session of node 1.
    let mut bob_raw = RawSession::open(&n1.url, None).await;
    let frank = n2.client().await;
    frank.ok("enter_queue", json!({})).await;
    let found = bob_raw.call("enter_queue", json!({})).await;
    assert_ne!(found["result"]["isError"], true, "{found}");
    let new_room = room(&frank.next("chatroom.found", STEP).await);
    let mut via_n2 = bob_raw.via(&n2.url);
    let said =
        via_n2.call("send_message", json!({"room_id": new_room, "message": "through the late node"})).await;
    assert_ne!(said["result"]["isError"], true, "{said}");
    assert_eq!(frank.next("message.received", STEP).await["message"], "through the late node");
    let history = ann.ok("get_history", json!({"room_id": room_id})).await;
    assert!(history.to_string().contains("early 11"), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_append_only_persistence_loses_nothing() {
    let mut redis = RedisServer::start().await;
    let n1 = node(&redis, &[]).await;
    let n2 = node(&redis, &[]).await;
    let ann = n1.client().await;
    let bob = n2.client().await;
    let room_id = pair(&ann, &bob).await;
    ann.ok("send_message", json!({"room_id": room_id, "message": "before"})).await;
    assert_eq!(bob.next("message.received", STEP).await["message"], "before");
    let carol_token = n1.known_client("carol").await;
    let dave = n2.client().await;
    dave.ok("checkin_client", json!({"client_id": "dave"})).await;
    dave.ok("send_message", json!({"recipient_id": "carol", "message": "kept by Redis"})).await;

    redis.kill().await;
    // While Redis is down a request gets a clear error, quickly, and changes nothing.
    let refused = within(Duration::from_secs(5), "a request while Redis is down", async {
        ann.try_call("send_message", json!({"room_id": room_id, "message": "lost?"})).await
    })
    .await;
    let text = match refused {
        Ok(outcome) => {
            assert!(outcome.is_error, "{outcome:?}");
            outcome.text
        }
        Err(error) => error,
    };
    assert!(text.contains("Redis") || text.contains("retry"), "{text}");

    redis.start_again().await;
    ann.ok_eventually("send_message", json!({"room_id": room_id, "message": "after"})).await;
    let next = bob.next("message.received", STEP).await;
    assert_eq!(next["message"], "after", "the refused message was never applied: {next}");
    bob.ok("send_message", json!({"room_id": room_id, "message": "both ways"})).await;
    assert_eq!(ann.next("message.received", STEP).await["message"], "both ways");
    let carol = n2.client().await;
    carol.ok("checkin_client", json!({"client_id": "carol", "resume_token": carol_token})).await;
    let mail = carol.ok("get_messages", json!({})).await;
    assert_eq!(mail["messages"][0]["message"], "kept by Redis", "{mail}");
}

/// A session-less (2026-07-28) client is no node's: its handle and inbox URI, made on
/// one node, work on every other, and a listen stream on one node hears what a request
/// on another caused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_works_on_every_node() {
    let redis = RedisServer::start().await;
    let (n1, n2) = (node(&redis, &[]).await, node(&redis, &[]).await);
    let mut ann = tests::Sessionless::new(&n1.url);
    ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    let handle = ann.handle.clone().expect("handle");

    // The same identity through node 2, with the handle node 1 made.
    let mut there = tests::Sessionless::new(&n2.url);
    there.handle = Some(handle.clone());
    there.inbox_uri = ann.inbox_uri.clone();
    let me = there.ok_eventually("get_my_identity", json!({})).await;
    assert_eq!(me["state"], "waiting", "{me}");
    let mut listening = there.listen().await;

    // Bob, on node 1, is paired with her; node 2's listen stream says so.
    let mut bob = tests::Sessionless::new(&n1.url);
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(matched["status"], "matched", "{matched}");
    let (_, updated) = listening.next_method("notifications/resources/updated").await;
    assert_eq!(updated["params"]["uri"].as_str(), ann.inbox_uri.as_deref(), "{updated}");
    let got = there.events_after(0, 5.0).await;
    assert_eq!(got["events"][0]["type"], "chatroom.found", "{got}");
    there.ok("send_message", json!({"room_id": matched["room_id"], "message": "from node 2"})).await;
    let heard = bob.events_after(0, 5.0).await;
    let texts: Vec<&Value> =
        heard["events"].as_array().into_iter().flatten().map(|e| &e["message"]).collect();
    assert!(texts.contains(&&json!("from node 2")), "{heard}");
}
