//! Nobody takes what is not theirs: an identity belongs to whoever holds its token, online
//! or offline; mail goes only to clients that exist; a retried send is sent once; the
//! event cursor cannot acknowledge what a limit cut off; a session whose identity was
//! taken is told so.

use serde_json::{Value, json};
use tests::{STEP, ServerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_agent_identity_and_its_mail_stay_its_own() {
    let server = ServerProcess::start(&[]).await;
    let owner = server.client().await;
    let checked = owner.ok("checkin_client", json!({"client_id": "backend"})).await;
    let token = checked["resume_token"].as_str().expect("token").to_owned();
    owner.close().await;
    let friend = server.client().await;
    friend.ok("checkin_client", json!({"client_id": "frontend"})).await;
    friend.ok("send_message", json!({"recipient_id": "backend", "message": "private"})).await;

    // Someone else: no token, no identity, no mail; the owner's token keeps working.
    let mallory = server.client().await;
    let taken = mallory.err("checkin_client", json!({"client_id": "backend"})).await;
    assert_eq!(taken["error"], "identity_taken", "{taken}");
    let guessed =
        mallory.err("checkin_client", json!({"client_id": "backend", "resume_token": "rt_guess"})).await;
    assert_eq!(guessed["error"], "bad_resume_token", "{guessed}");
    let spoof = mallory.err("get_messages", json!({"client_id": "backend"})).await;
    assert_eq!(spoof["error"], "identity_taken", "{spoof}");

    let back = server.client().await;
    let again = back.ok("checkin_client", json!({"client_id": "backend", "resume_token": token})).await;
    assert_eq!(again["pending_messages"], 1, "{again}");
    let mail = back.ok("get_messages", json!({})).await;
    assert_eq!(mail["messages"][0]["message"], "private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ex_partner_cannot_claim_a_roulette_id() {
    let server = ServerProcess::start(&[]).await;
    let ann = server.client().await;
    ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    let bob = server.client().await;
    bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let found = bob.next("chatroom.found", STEP).await;
    let ann_id = found["partner"]["user_id"].as_str().expect("id").to_owned();
    ann.close().await;
    let again = server.client().await;
    let taken = again.err("enter_queue", json!({"user_id": ann_id})).await;
    assert_eq!(taken["error"], "identity_taken", "{taken}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_an_id_nobody_checked_in_as_is_refused() {
    let server = ServerProcess::start(&[]).await;
    let sender = server.client().await;
    sender.ok("checkin_client", json!({"client_id": "sender"})).await;
    let refused = sender.err("send_message", json!({"recipient_id": "not-yet", "message": "hi"})).await;
    assert_eq!(refused["error"], "unknown_recipient", "{refused}");
    // The first to check in as it would otherwise have read this.
    let squatter = server.client().await;
    squatter.ok("checkin_client", json!({"client_id": "not-yet"})).await;
    assert_eq!(squatter.ok("get_messages", json!({})).await["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_clients_need_their_secret() {
    let dir = std::env::temp_dir().join(format!("mcp-chat-ownership-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("clients");
    std::fs::write(&file, "backend 9f8e7d6c5b4a39281706 Backend IDE\n").expect("write");
    let server = ServerProcess::start(&["--clients-file", file.to_str().expect("path")]).await;
    let front = server.client().await;
    front.ok("checkin_client", json!({"client_id": "frontend"})).await;
    let sent = front.ok("send_message", json!({"recipient_id": "backend", "message": "held for you"})).await;
    assert_eq!(sent["recipient_online"], false);
    let mallory = server.client().await;
    let taken = mallory.err("checkin_client", json!({"client_id": "backend"})).await;
    assert_eq!(taken["error"], "identity_taken", "{taken}");
    let backend = server.client().await;
    let checked = backend
        .ok("checkin_client", json!({"client_id": "backend", "resume_token": "9f8e7d6c5b4a39281706"}))
        .await;
    assert_eq!(
        (checked["name"].clone(), checked["pending_messages"].clone()),
        (json!("Backend IDE"), json!(1))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_is_delivered_once() {
    let server = ServerProcess::start(&[]).await;
    let a = server.client().await;
    a.ok("checkin_client", json!({"client_id": "a"})).await;
    let b = server.client().await;
    b.ok("checkin_client", json!({"client_id": "b"})).await;
    let send = json!({"recipient_id": "b", "message": "once", "client_message_id": "a-0001"});
    let first = a.ok("send_message", send.clone()).await;
    let retry = a.ok("send_message", send).await;
    assert_eq!(first["message_id"], retry["message_id"], "the retry returns the first result");
    let mail = b.ok("get_messages", json!({})).await;
    assert_eq!(mail["messages"].as_array().map(Vec::len), Some(1), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_cursor_over_a_backlog_loses_nothing() {
    let server = ServerProcess::start(&["--rate-messages", "1000"]).await;
    let a = server.client().await;
    a.ok("checkin_client", json!({"client_id": "a"})).await;
    let b = server.client().await;
    b.ok("checkin_client", json!({"client_id": "b"})).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(a.ok("send_message", json!({"recipient_id": "b", "message": format!("m{i}")})).await["message_id"].clone());
    }
    let (mut cursor, mut got): (Option<Value>, Vec<Value>) = (None, Vec::new());
    loop {
        let mut args = json!({"limit": 7, "timeout": 0});
        if let Some(c) = &cursor {
            args["after_seq"] = c.clone();
        }
        let page = b.ok("wait_for_events", args).await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        got.extend(events.iter().map(|e| e["message_id"].clone()));
        cursor = Some(page["next_after_seq"].clone());
    }
    assert_eq!(got, sent, "all 30, once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_identity_was_resumed_elsewhere_is_told_so() {
    let server = ServerProcess::start(&[]).await;
    let old = server.client().await;
    let token = old.ok("checkin_client", json!({"client_id": "a"})).await["resume_token"].clone();
    let new = server.client().await;
    new.ok("resume_session", json!({"user_id": "a", "resume_token": token})).await;
    let told = old.err("list_clients", json!({})).await;
    assert_eq!(told["error"], "taken_over", "{told}");
    assert!(told["message"].as_str().is_some_and(|m| m.contains("resume_session")), "{told}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_of_invisible_characters_is_empty() {
    let server = ServerProcess::start(&[]).await;
    let a = server.client().await;
    a.ok("checkin_client", json!({"client_id": "a"})).await;
    let b = server.client().await;
    b.ok("checkin_client", json!({"client_id": "b"})).await;
    let empty =
        a.err("send_message", json!({"recipient_id": "b", "message": "\u{200B}\u{200D}\u{FEFF}"})).await;
    assert_eq!(empty["error"], "empty_message", "{empty}");
}
