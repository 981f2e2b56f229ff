//! The session-less MCP revision (2026-07-28) against the real binary, beside the 2025
//! one on the same `/mcp`: `server/discover`, an unsupported version, identity by
//! `handle` (missing, wrong, stale), push through `subscriptions/listen` with
//! `notifications/resources/updated` then a fetch, presence by lease, and a pair of
//! clients from the two eras in one room.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{STEP, ServerProcess, Sessionless, SseEvents};

fn events(value: &Value) -> Vec<Value> {
    value["events"].as_array().cloned().unwrap_or_default()
}

/// The next `notifications/resources/updated` on a listen stream: its URI.
async fn updated(stream: &mut SseEvents) -> String {
    let (_, message) = stream.next_method("notifications/resources/updated").await;
    message["params"]["uri"].as_str().expect("uri").to_owned()
}

/// Fetches (and acknowledges up to `cursor`) until an event of `kind` arrives; returns it
/// and moves `cursor` past everything fetched.
async fn fetch_until(client: &mut Sessionless, cursor: &mut u64, kind: &str) -> Value {
    for _ in 0..10 {
        let got = client.events_after(*cursor, 5.0).await;
        if let Some(next) = got["next_after_seq"].as_u64() {
            *cursor = next.max(*cursor);
        }
        if let Some(event) = events(&got).into_iter().find(|e| e["type"] == kind) {
            return event;
        }
    }
    panic!("no {kind} event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_both_eras_and_an_unknown_version_gets_32022() {
    let server = ServerProcess::start(&[]).await;
    let client = Sessionless::new(&server.url);
    let discovered = client.request("server/discover", json!({})).await;
    let result = &discovered["result"];
    let versions = result["supportedVersions"].as_array().expect("supportedVersions").clone();
    assert!(versions.contains(&json!("2026-07-28")), "{discovered}");
    assert!(versions.contains(&json!("2025-11-25")), "{discovered}");
    assert!(result.to_string().contains("handle"), "the instructions tell about handle: {discovered}");

    let future = Sessionless::with_version(&server.url, "2099-01-01");
    let refused = future.request("tools/list", json!({})).await;
    assert_eq!(refused["error"]["code"], -32022, "{refused}");
    let supported = refused["error"]["data"]["supported"].as_array().expect("data.supported");
    assert!(supported.contains(&json!("2026-07-28")), "{refused}");

    // tools/list works without a session, and shows `handle`.
    let tools = client.request("tools/list", json!({})).await;
    let listed = tools["result"]["tools"].as_array().expect("tools");
    let wait = listed.iter().find(|t| t["name"] == "wait_for_events").expect("wait_for_events");
    assert_eq!(wait["inputSchema"]["properties"]["handle"]["type"], "string", "{wait}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roulette_by_handle_with_listen_and_fetch() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = Sessionless::new(&server.url);
    let mut bob = Sessionless::new(&server.url);

    let queued = ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    assert_eq!(queued["status"], "waiting", "{queued}");
    let handle = ann.handle.clone().expect("a handle");
    assert!(handle.len() >= 32, "unguessable: {handle}");
    let inbox = ann.inbox_uri.clone().expect("an inbox URI");
    assert!(inbox.starts_with("chat://inbox/"), "{inbox}");
    assert!(!inbox.contains(&handle), "the inbox URI does not give the handle away");
    assert!(!inbox.contains(queued["user_id"].as_str().unwrap_or("-")), "not guessable from the user id");

    let mut ann_stream = ann.listen().await;
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(matched["status"], "matched", "{matched}");
    let room_id = matched["room_id"].as_str().expect("room").to_owned();

    // Ann is told to fetch, and the fetch has chatroom.found (no custom notification
    // ever goes out on a listen stream).
    assert_eq!(updated(&mut ann_stream).await, inbox);
    let mut ann_cursor = 0;
    let found = fetch_until(&mut ann, &mut ann_cursor, "chatroom.found").await;
    assert_eq!(found["room_id"], room_id.as_str());

    ann.ok("send_message", json!({"room_id": room_id, "message": "hi Bob"})).await;
    let mut bob_cursor = 0;
    let got = fetch_until(&mut bob, &mut bob_cursor, "message.received").await;
    assert_eq!(got["message"], "hi Bob");
    bob.ok("send_message", json!({"room_id": room_id, "message": "hi Ann"})).await;
    assert_eq!(updated(&mut ann_stream).await, inbox);
    let got = fetch_until(&mut ann, &mut ann_cursor, "message.received").await;
    assert_eq!(got["message"], "hi Ann");

    // The inbox can be read as a resource too.
    let read = ann.request("resources/read", json!({"uri": inbox})).await;
    assert!(read["result"]["contents"].is_array(), "{read}");

    bob.ok("leave_chat", json!({"room_id": room_id})).await;
    assert_eq!(updated(&mut ann_stream).await, inbox);
    let bye = fetch_until(&mut ann, &mut ann_cursor, "partner.disconnected").await;
    assert_eq!(bye["reason"], "left");
    // Nothing but resources/updated was pushed.
    while let Some((_, message)) = ann_stream.try_next(Duration::from_millis(300)).await {
        assert_eq!(message["method"], "notifications/resources/updated", "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_handle_is_an_error_that_says_what_to_do() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = Sessionless::new(&server.url);
    let mut eve = Sessionless::new(&server.url);
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    eve.ok("checkin_client", json!({"client_id": "eve"})).await;

    let missing = eve.call_as_is("get_my_identity", json!({})).await;
    assert_eq!(missing["isError"], true, "{missing}");
    assert_eq!(missing["structuredContent"]["error"], "handle_required", "{missing}");
    let text = missing["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("handle") && text.contains("enter_queue"), "{text}");

    let wrong = eve.call_as_is("get_messages", json!({"handle": "0123456789abcdef0123456789abcdef"})).await;
    assert_eq!(wrong["isError"], true, "{wrong}");
    assert_eq!(wrong["structuredContent"]["error"], "unknown_handle", "{wrong}");
    assert!(wrong["content"][0]["text"].as_str().unwrap_or("").contains("resume_session"), "{wrong}");
    assert!(!wrong.to_string().contains("\"ann\""), "nothing of another identity: {wrong}");

    // Each handle acts only as its own identity.
    let me = eve.ok("get_my_identity", json!({})).await;
    assert_eq!(me["user_id"], "eve", "{me}");
    let ann_me = ann.ok("get_my_identity", json!({})).await;
    assert_eq!(ann_me["user_id"], "ann", "{ann_me}");

    // A 2025 session may pass its own handle, never another's.
    let session = server.client().await;
    let checked = session.ok("checkin_client", json!({"client_id": "sam"})).await;
    let own = checked["handle"].as_str().expect("a handle in a session too").to_owned();
    session.ok("get_my_identity", json!({"handle": own})).await;
    let foreign = session.err("get_my_identity", json!({"handle": ann.handle.clone()})).await;
    assert_eq!(foreign["error"], "wrong_handle", "{foreign}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_with_send_message_and_wait() {
    let server = ServerProcess::start(&[]).await;
    let mut ann = Sessionless::new(&server.url);
    let mut bob = Sessionless::new(&server.url);
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    bob.ok("checkin_client", json!({"client_id": "bob"})).await;

    let bob_handle = bob.handle.clone().expect("handle");
    let url = server.url.clone();
    let asking = tokio::spawn(async move {
        let mut ann = ann;
        let answer = ann
            .ok("send_message_and_wait", json!({"recipient_id": "bob", "message": "ping?", "timeout": 20}))
            .await;
        (ann, answer)
    });
    let mut bob = Sessionless::new(&url);
    bob.handle = Some(bob_handle);
    let mut cursor = 0;
    let asked = fetch_until(&mut bob, &mut cursor, "message.received").await;
    assert_eq!(asked["message"], "ping?", "{asked}");
    bob.ok("send_message", json!({"recipient_id": "ann", "message": "pong"})).await;
    let (_ann, answer) = tests::within(STEP, "send_message_and_wait returns", asking).await.expect("join");
    assert_eq!(answer["status"], "replied", "{answer}");
    assert_eq!(answer["reply"]["message"], "pong", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_is_a_lost_connection_then_the_partner_hears_timeout() {
    let server = ServerProcess::start(&["--lease", "1s", "--reconnect-grace", "1s"]).await;
    let mut ann = Sessionless::new(&server.url);
    let mut bob = Sessionless::new(&server.url);
    ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(matched["status"], "matched", "{matched}");
    let stale = ann.handle.clone().expect("handle");

    // Bob keeps waiting (a waiting call holds him online); Ann says nothing any more.
    // Her lease (1 s) lapses, then her reconnect grace (1 s) runs out: well before the
    // 10 s after which a one-call session would have ended anyway.
    let started = std::time::Instant::now();
    let mut cursor = 0;
    let away = fetch_until(&mut bob, &mut cursor, "partner.reconnecting").await;
    assert_eq!(away["room_id"], matched["room_id"], "{away}");
    let gone = fetch_until(&mut bob, &mut cursor, "partner.disconnected").await;
    assert_eq!(gone["reason"], "timeout", "{gone}");
    assert!(started.elapsed() < Duration::from_secs(6), "after {:?}", started.elapsed());

    // Ann's handle is over: she is told how to come back.
    let late = ann.call_as_is("get_my_identity", json!({"handle": stale})).await;
    assert_eq!(late["structuredContent"]["error"], "unknown_handle", "{late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_session_and_a_2026_client_chat_in_one_room() {
    let server = ServerProcess::start(&[]).await;
    let old = server.client().await;
    let mut new = Sessionless::new(&server.url);

    old.ok("enter_queue", json!({"display_name": "Old"})).await;
    let matched = new.ok("enter_queue", json!({"display_name": "New"})).await;
    assert_eq!(matched["status"], "matched", "{matched}");
    let room_id = matched["room_id"].as_str().expect("room").to_owned();
    // The session gets its custom notification, as always.
    let found = old.next("chatroom.found", STEP).await;
    assert_eq!(found["room_id"], room_id.as_str());

    let mut stream = new.listen().await;
    old.ok("send_message", json!({"room_id": room_id, "message": "from 2025"})).await;
    updated(&mut stream).await;
    let mut cursor = 0;
    let got = fetch_until(&mut new, &mut cursor, "message.received").await;
    assert_eq!(got["message"], "from 2025");

    new.ok("send_message", json!({"room_id": room_id, "message": "from 2026"})).await;
    let got = old.next("message.received", STEP).await;
    assert_eq!(got["message"], "from 2026");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_sends_progress_when_asked() {
    let server = ServerProcess::start(&["--progress-interval", "200ms"]).await;
    let mut ann = Sessionless::new(&server.url);
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    let params = json!({
        "name": "wait_for_events",
        "arguments": {"handle": ann.handle.clone(), "timeout": 1},
        "_meta": {"progressToken": "p-1"},
    });
    let response = ann.send("tools/call", params, Some("wait_for_events")).await;
    let messages = tests::rpc_messages(&response.text().await.expect("body"));
    let progress: Vec<_> = messages.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert!(!progress.is_empty(), "{messages:?}");
    assert_eq!(progress[0]["params"]["progressToken"], "p-1");
    let result = messages.iter().find(|m| m.get("result").is_some()).expect("a result");
    assert_eq!(result["result"]["structuredContent"]["timed_out"], true, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_survives_a_restart_on_a_durable_store() {
    let dir = tempfile::Builder::new().prefix("mcp-chat-store-").tempdir().expect("temp dir");
    let flag = format!("sqlite:{}", dir.path().join("chat.db").display());
    let mut server = ServerProcess::start(&["--store", &flag]).await;
    let mut ann = Sessionless::new(&server.url);
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    let (handle, inbox) = (ann.handle.clone(), ann.inbox_uri.clone());

    server.kill().await;
    server.restart(&["--store", &flag]).await;
    let mut ann = Sessionless::new(&server.url);
    (ann.handle, ann.inbox_uri) = (handle, inbox);
    let me = ann.ok("get_my_identity", json!({})).await;
    assert_eq!(me["user_id"], "ann", "{me}");
    let read = ann.request("resources/read", json!({"uri": ann.inbox_uri.clone()})).await;
    assert!(read["result"]["contents"].is_array(), "the inbox URI too: {read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_session_limit_only_calls_that_open_one_are_refused() {
    let server = ServerProcess::start(&["--max-sessions", "1"]).await;
    let mut ann = Sessionless::new(&server.url);
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    // The server is full, but requests that open nothing are served ...
    let tools = ann.request("tools/list", json!({})).await;
    assert!(tools["result"]["tools"].is_array(), "{tools}");
    ann.ok("get_my_identity", json!({})).await;
    // ... and a new identity is refused with a JSON-RPC error that says why.
    let bob = Sessionless::new(&server.url);
    let refused = bob.request("tools/call", json!({"name": "enter_queue", "arguments": {}})).await;
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap_or("").contains("limit"), "{refused}");
}

/// Polls `tasks/get` for `task_id` until its status is `status`; returns the task.
async fn task_until(client: &Sessionless, task_id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let got = client.request("tasks/get", json!({"taskId": task_id})).await;
        assert!(got.get("error").is_none(), "tasks/get: {got}");
        last = got["result"].clone();
        if last["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {task_id} never became {status}: {last}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_message_and_wait_runs_as_a_task_for_a_client_with_the_extension() {
    // A 1 s lease: the task, not requests, must keep Ann online while she waits.
    let server = ServerProcess::start(&["--lease", "1s", "--reconnect-grace", "1s"]).await;
    let mut ann = Sessionless::new(&server.url).with_tasks();
    let mut bob = Sessionless::new(&server.url);
    let discovered = ann.request("server/discover", json!({})).await;
    let extensions = &discovered["result"]["capabilities"]["extensions"];
    assert!(extensions.get("io.modelcontextprotocol/tasks").is_some(), "{discovered}");
    ann.ok("checkin_client", json!({"client_id": "ann"})).await;
    bob.ok("checkin_client", json!({"client_id": "bob"})).await;
    let handle = ann.handle.clone().expect("handle");

    // The call answers at once with a task, not after the reply.
    let created = ann
        .request(
            "tools/call",
            json!({"name": "send_message_and_wait", "arguments": {
            "handle": handle, "recipient_id": "bob", "message": "ping?", "timeout": 30}}),
        )
        .await;
    let task = &created["result"];
    assert_eq!(task["resultType"], "task", "{created}");
    assert_eq!(task["status"], "working", "{created}");
    assert!(task["pollIntervalMs"].as_u64().is_some(), "{created}");
    let task_id = task["taskId"].as_str().expect("taskId").to_owned();

    // The message went out; the task says what it waits for.
    let mut cursor = 0;
    let asked = fetch_until(&mut bob, &mut cursor, "message.received").await;
    assert_eq!(asked["message"], "ping?", "{asked}");
    let working = task_until(&ann, &task_id, "working").await;
    assert!(working["statusMessage"].as_str().unwrap_or("").contains("bob"), "{working}");

    // Past Ann's lease she is still online: the waiting task holds her (Bob is held by
    // his own wait).
    let quiet = bob.events_after(cursor, 2.5).await;
    assert!(events(&quiet).is_empty(), "{quiet}");
    let clients = bob.ok("list_clients", json!({})).await;
    let ann_seen =
        clients["clients"].as_array().expect("clients").iter().find(|c| c["client_id"] == "ann").cloned();
    assert_eq!(ann_seen.as_ref().map(|c| c["status"].clone()), Some(json!("online")), "{clients}");

    bob.ok("send_message", json!({"recipient_id": "ann", "message": "pong"})).await;
    let done = task_until(&ann, &task_id, "completed").await;
    let result = &done["result"]["structuredContent"];
    assert_eq!(result["status"], "replied", "{done}");
    assert_eq!(result["reply"]["message"], "pong", "{done}");
    assert_eq!(done["statusMessage"], "bob replied", "{done}");

    // Cancelled while waiting: the task says so; the message stays delivered.
    let created = ann
        .request(
            "tools/call",
            json!({"name": "send_message_and_wait", "arguments": {
            "handle": handle, "recipient_id": "bob", "message": "still there?", "timeout": 30}}),
        )
        .await;
    let second = created["result"]["taskId"].as_str().expect("taskId").to_owned();
    let asked = fetch_until(&mut bob, &mut cursor, "message.received").await;
    assert_eq!(asked["message"], "still there?", "{asked}");
    let cancelled = ann.request("tasks/cancel", json!({"taskId": second})).await;
    assert!(cancelled.get("error").is_none(), "{cancelled}");
    task_until(&ann, &second, "cancelled").await;

    // An unknown task id is a JSON-RPC error, not another caller's task.
    let unknown = ann.request("tasks/get", json!({"taskId": "no-such-task"})).await;
    assert!(unknown.get("error").is_some(), "{unknown}");

    // Without the extension the same call blocks and returns the reply itself.
    let mut plain = Sessionless::new(&server.url);
    plain.handle = Some(handle);
    let asking = tokio::spawn(async move {
        plain
            .ok(
                "send_message_and_wait",
                json!({"recipient_id": "bob", "message": "blocking?", "timeout": 20}),
            )
            .await
    });
    let asked = fetch_until(&mut bob, &mut cursor, "message.received").await;
    assert_eq!(asked["message"], "blocking?", "{asked}");
    bob.ok("send_message", json!({"recipient_id": "ann", "message": "yes"})).await;
    let answer = tests::within(STEP, "blocking send_message_and_wait", asking).await.expect("join");
    assert_eq!(answer["status"], "replied", "{answer}");
    assert_eq!(answer["reply"]["message"], "yes", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_needs_a_session_says_so_without_one() {
    let server = ServerProcess::start(&[]).await;
    let client = Sessionless::new(&server.url);
    // No standalone GET stream and no session to DELETE in this revision: 405, Allow: POST.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = tests::http()
            .request(method.clone(), &server.url)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"), "{method}");
        let text = response.text().await.expect("body");
        assert!(text.contains("subscriptions/listen"), "{method}: {text}");
    }
    // logging/setLevel belongs to a session: -32601 that says what there is instead.
    let level = client.request("logging/setLevel", json!({"level": "debug"})).await;
    assert_eq!(level["error"]["code"], -32601, "{level}");
    assert!(level["error"]["message"].as_str().unwrap_or("").contains("handle"), "{level}");
    // Room transcripts are a session's resources; without one the template list is empty.
    let templates = client.request("resources/templates/list", json!({})).await;
    assert_eq!(templates["result"]["resourceTemplates"], json!([]), "{templates}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_within_the_reconnect_grace_brings_a_lapsed_handle_back() {
    let server = ServerProcess::start(&["--lease", "1s", "--reconnect-grace", "30s"]).await;
    let mut ann = Sessionless::new(&server.url);
    let mut bob = Sessionless::new(&server.url);
    ann.ok("enter_queue", json!({"display_name": "Ann"})).await;
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let room = matched["room_id"].clone();

    // Ann goes quiet past her lease: Bob (held by his waits) hears she is reconnecting.
    let mut cursor = 0;
    let away = fetch_until(&mut bob, &mut cursor, "partner.reconnecting").await;
    assert_eq!(away["room_id"], room, "{away}");

    // Any call with her handle within the grace: she is back, in the same room.
    let me = ann.ok("get_my_identity", json!({})).await;
    assert_eq!(me["state"], "chatting", "{me}");
    assert_eq!(me["room_id"], room, "{me}");
    let back = fetch_until(&mut bob, &mut cursor, "partner.reconnected").await;
    assert_eq!(back["room_id"], room, "{back}");
    ann.ok("send_message", json!({"room_id": room, "message": "sorry, was away"})).await;
    let said = fetch_until(&mut bob, &mut cursor, "message.received").await;
    assert_eq!(said["message"], "sorry, was away", "{said}");
}
