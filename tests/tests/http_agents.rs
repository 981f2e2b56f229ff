//! Agent-to-agent messaging as in the seed server: check in, send and wait for a reply,
//! mailboxes for offline clients, expiry, and seed-style `sender_id` / `client_id`.

use std::time::{Duration, Instant};

use rmcp::model::{NumberOrString, ProgressToken, RequestMetaObject};
use serde_json::json;
use tests::{STEP, ServerProcess, TestClient, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_wait_gets_the_reply() {
    let server = ServerProcess::start(&[]).await;
    let alice = server.client().await;
    let bob = server.client().await;
    let checked = alice
        .ok("checkin_client", json!({"client_id": "alice", "name": "Alice", "capabilities": ["frontend"]}))
        .await;
    assert!(checked["resume_token"].as_str().is_some());
    bob.ok("checkin_client", json!({"client_id": "bob", "capabilities": "backend, review"})).await;

    let clients = alice.ok("list_clients", json!({})).await;
    let ids: Vec<_> =
        clients["clients"].as_array().expect("clients").iter().map(|c| c["client_id"].clone()).collect();
    assert_eq!(ids, [json!("alice"), json!("bob")]);
    assert_eq!(clients["clients"][1]["capabilities"], json!(["backend", "review"]));

    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let result = alice
            .call(
                "send_message_and_wait",
                json!({"recipient_id": "bob", "message": "Can you review PR 12?", "timeout": 20}),
            )
            .await;
        (result, started.elapsed(), alice)
    });

    // Bob sees the message (pushed, and in his mailbox), then answers.
    let pushed = bob.next("message.received", STEP).await;
    assert_eq!(pushed["from"], "alice");
    assert!(pushed.get("room_id").is_none(), "direct messages carry no room_id");
    let inbox = bob.ok("get_messages", json!({})).await;
    assert_eq!(inbox["messages"][0]["message"], "Can you review PR 12?");
    assert_eq!(inbox["remaining"], 0);
    bob.ok("send_message", json!({"recipient_id": "alice", "message": "Sure, on it."})).await;

    let (result, waited, alice) = within(STEP, "send_message_and_wait returns", waiting).await.expect("join");
    assert!(!result.is_error, "{}", result.text);
    assert_eq!(result.data["status"], "replied");
    assert_eq!(result.data["reply"]["message"], "Sure, on it.");
    assert_eq!(result.data["reply"]["from"], "bob");
    assert!(result.text.contains("Sure, on it."), "{}", result.text);
    assert!(waited < Duration::from_secs(10));
    // The reply was taken by the waiting call: it is not delivered twice.
    let left = alice.ok("get_messages", json!({})).await;
    assert_eq!(left["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_mailbox_is_delivered_on_checkin_and_expiry_tells_the_sender() {
    let server = ServerProcess::start(&["--message-ttl", "2s"]).await;
    let alice = server.client().await;
    alice.ok("checkin_client", json!({"client_id": "alice"})).await;
    let carol_token = server.known_client("carol").await;
    server.known_client("dave").await;

    let sent =
        alice.ok("send_message", json!({"recipient_id": "carol", "message": "see you tomorrow"})).await;
    assert_eq!(sent["recipient_online"], false);
    let kept = alice.ok("send_message", json!({"recipient_id": "dave", "message": "read me later"})).await;
    assert_eq!(kept["recipient_online"], false);

    // Carol checks in before the TTL and finds the message waiting.
    let carol = server.client().await;
    let checked =
        carol.ok("checkin_client", json!({"client_id": "carol", "resume_token": carol_token})).await;
    assert_eq!(checked["pending_messages"], 1);
    // Mail that waited is delivered on check-in like any message (and stays until read).
    let delivered = carol.next("message.received", STEP).await;
    assert_eq!(delivered["message"], "see you tomorrow");
    assert_eq!(delivered["from"], "alice");
    let mail = carol.ok("get_messages", json!({"peek": true})).await;
    assert_eq!(mail["messages"][0]["message"], "see you tomorrow");
    let mail = carol.ok("get_messages", json!({"limit": 10})).await;
    assert_eq!(mail["messages"][0]["from"], "alice");

    // Dave never comes: Alice learns that her message expired, with its text.
    let expired = alice.next("message.expired", Duration::from_secs(6)).await;
    assert_eq!(expired["recipient_id"], "dave");
    assert_eq!(expired["message"], "read me later");
    assert_eq!(expired["message_id"], kept["message_id"]);
    alice.none("message.expired", Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_style_sender_id_checks_in_and_is_verified() {
    let server = ServerProcess::start(&[]).await;
    let ide = server.client().await;
    let other = server.client().await;
    // The recipient names itself the seed's way first (mail goes only to known clients).
    assert_eq!(other.ok("get_messages", json!({"client_id": "ide-2"})).await["messages"], json!([]));
    // Like the seed: no check-in, the sender names itself.
    let sent = ide
        .ok("send_message", json!({"sender_id": "ide-1", "recipient_id": "ide-2", "message": "ping"}))
        .await;
    assert_eq!(sent["checked_in"]["client_id"], "ide-1");
    assert!(
        sent["checked_in"]["resume_token"].as_str().is_some(),
        "implicit check-in keeps its token: {sent}"
    );
    // A second sender_id in the same session is refused.
    let spoof =
        ide.err("send_message", json!({"sender_id": "ide-9", "recipient_id": "ide-2", "message": "x"})).await;
    assert_eq!(spoof["error"], "identity_mismatch");
    // The recipient reads with the seed's get_messages(client_id).
    let mail = other.ok("get_messages", json!({"client_id": "ide-2"})).await;
    assert_eq!(mail["messages"][0]["message"], "ping");
    assert_eq!(mail["messages"][0]["from"], "ide-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_sends_progress_and_times_out_cleanly() {
    let server = ServerProcess::start(&["--progress-interval", "200ms"]).await;
    let alice = server.client().await;
    alice.ok("checkin_client", json!({"client_id": "alice"})).await;
    server.known_client("nobody").await;
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::String("wait-1".into())));
    let started = Instant::now();
    let result = alice
        .call_with_meta(
            "send_message_and_wait",
            json!({"recipient_id": "nobody", "message": "hello?", "timeout": 1}),
            Some(meta),
        )
        .await;
    let took = started.elapsed();
    assert!(!result.is_error, "{}", result.text);
    assert_eq!(result.data["status"], "timeout");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(4), "{took:?}");
    let progress = alice.next("notifications/progress", STEP).await;
    // rmcp's client puts its own token on every request; any token must be echoed.
    assert!(!progress["progressToken"].is_null(), "{progress}");
    assert_eq!(progress["total"], 1.0);

    // wait_for_events caps its timeout and returns an empty, non-error result.
    let started = Instant::now();
    let empty = alice.call("wait_for_events", json!({"timeout": 0.3})).await;
    assert!(!empty.is_error);
    assert_eq!(empty.data["timed_out"], true);
    assert!(started.elapsed() < Duration::from_secs(3));
    let bad = alice.err("wait_for_events", json!({"timeout": -1})).await;
    assert_eq!(bad["error"], "invalid_arguments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_agents_exchange_messages_concurrently() {
    let server = ServerProcess::start(&[]).await;
    let mut agents = Vec::new();
    for i in 0..8 {
        let client = server.client().await;
        client.ok("checkin_client", json!({"client_id": format!("agent-{i}")})).await;
        agents.push(client);
    }
    let agents: Vec<std::sync::Arc<TestClient>> = agents.into_iter().map(std::sync::Arc::new).collect();
    let mut tasks = Vec::new();
    for (i, agent) in agents.iter().enumerate() {
        let agent = agent.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..5 {
                let to = format!("agent-{}", (i + 1) % 8);
                agent
                    .ok("send_message", json!({"recipient_id": to, "message": format!("{n} from {i}")}))
                    .await;
            }
        }));
    }
    for task in tasks {
        within(STEP, "senders finish", task).await.expect("join");
    }
    for agent in &agents {
        let mail = agent.ok("get_messages", json!({})).await;
        let texts: Vec<_> =
            mail["messages"].as_array().expect("messages").iter().map(|m| m["message"].clone()).collect();
        assert_eq!(texts.len(), 5, "{texts:?}");
        // In order per sender.
        let numbers: Vec<_> = texts
            .iter()
            .map(|t| t.as_str().unwrap_or_default().split(' ').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(numbers, ["0", "1", "2", "3", "4"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_typing_reaches_the_recipient_and_nobody_else() {
    let server = ServerProcess::start(&["--typing-timeout", "1s"]).await;
    let alice = server.client().await;
    let bob = server.client().await;
    let carol = server.client().await;
    alice.ok("checkin_client", json!({"client_id": "alice", "name": "Alice"})).await;
    bob.ok("checkin_client", json!({"client_id": "bob"})).await;
    carol.ok("checkin_client", json!({"client_id": "carol"})).await;

    let on = alice.ok("set_typing", json!({"recipient_id": "bob"})).await;
    assert_eq!(
        (&on["recipient_id"], &on["typing"], &on["notified"]),
        (&json!("bob"), &json!(true), &json!(true))
    );
    let seen = bob.next("direct.typing", STEP).await;
    assert_eq!(
        (&seen["from"], &seen["from_name"], &seen["typing"]),
        (&json!("alice"), &json!("Alice"), &json!(true))
    );
    assert!(seen.get("room_id").is_none(), "{seen}");
    // Not mail: nothing waits in Bob's mailbox, but the event is in his inbox.
    assert_eq!(bob.ok("get_messages", json!({"peek": true})).await["messages"], json!([]));
    let events = bob.ok("wait_for_events", json!({"timeout": 0})).await;
    assert_eq!(events["events"][0]["type"], "direct.typing", "{events}");
    // It clears itself after --typing-timeout.
    let off = bob.next("direct.typing", STEP).await;
    assert_eq!((&off["from"], &off["typing"]), (&json!("alice"), &json!(false)));
    carol.none("direct.typing", Duration::from_millis(300)).await;

    // Exactly one target, as for send_message; unknown ids as for send_message.
    for args in [json!({"typing": true}), json!({"room_id": "r_0000000000000001", "recipient_id": "bob"})] {
        let refused = alice.err("set_typing", args).await;
        assert_eq!(refused["error"], "invalid_arguments");
        assert!(refused["message"].as_str().is_some_and(|m| m.contains("recipient_id")), "{refused}");
    }
    let unknown = alice.err("set_typing", json!({"recipient_id": "nobody"})).await;
    assert_eq!(unknown["error"], "unknown_recipient");
}
