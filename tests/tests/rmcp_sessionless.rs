//! rmcp's own client in the session-less revision (2026-07-28, `ClientLifecycleMode::Discover`)
//! against the real binary: it discovers, calls tools by `handle`, listens on its inbox
//! with `subscriptions/listen`, and polls `send_message_and_wait` as a task.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, GetTaskParams, Implementation,
    ProtocolVersion, ServerNotification, SubscriptionFilter, TaskPayload,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};
use tests::{STEP, ServerProcess, within};

type Client = RunningService<RoleClient, ClientConfig>;

/// An rmcp client of `url` in the session-less revision, declaring the tasks extension
/// when `tasks` is set.
async fn connect(url: &str, tasks: bool) -> Client {
    let capabilities: ClientCapabilities = if tasks {
        serde_json::from_value(json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}))
            .expect("capabilities")
    } else {
        ClientCapabilities::default()
    };
    let info = ClientConfig::new(capabilities, Implementation::new("rmcp-sessionless", "1"));
    let config = StreamableHttpClientTransportConfig::with_uri(url);
    let transport = StreamableHttpClientTransport::with_client(tests::http(), config);
    let lifecycle = ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
    within(STEP, "server/discover", info.serve_with_lifecycle(transport, lifecycle)).await.expect("discover")
}

/// Calls `tool` with `arguments`; returns `structuredContent`, asserting success.
async fn ok(client: &Client, tool: &str, arguments: Value) -> Value {
    let Value::Object(arguments) = arguments else { panic!("arguments must be an object") };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    let result = within(Duration::from_secs(40), tool, client.call_tool(params)).await.expect(tool);
    let data = result.structured_content.clone().unwrap_or(Value::Null);
    assert_ne!(result.is_error, Some(true), "{tool} failed: {data}");
    data
}

/// `wait_for_events {handle, after_seq}` until an event of `kind`; moves `cursor`.
async fn fetch_until(client: &Client, handle: &str, cursor: &mut u64, kind: &str) -> Value {
    for _ in 0..10 {
        let got =
            ok(client, "wait_for_events", json!({"handle": handle, "after_seq": *cursor, "timeout": 5}))
                .await;
        *cursor = got["next_after_seq"].as_u64().unwrap_or(*cursor).max(*cursor);
        if let Some(event) = got["events"].as_array().into_iter().flatten().find(|e| e["type"] == kind) {
            return event.clone();
        }
    }
    panic!("no {kind} event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_discover_client_chats_by_handle_and_listens() {
    let server = ServerProcess::start(&[]).await;
    let ann = connect(&server.url, false).await;
    let bob = connect(&server.url, false).await;
    let discovered = ann.peer_info().expect("discover result");
    assert_eq!(
        discovered.protocol_version,
        ProtocolVersion::V_2026_07_28,
        "rmcp speaks the session-less revision here: {discovered:?}"
    );

    let queued = ok(&ann, "enter_queue", json!({"display_name": "Ann"})).await;
    let ann_handle = queued["handle"].as_str().expect("handle").to_owned();
    let inbox = queued["inbox_uri"].as_str().expect("inbox_uri").to_owned();
    let mut filter = SubscriptionFilter::new();
    filter.resource_subscriptions = Some(vec![inbox.clone()]);
    let mut listening = within(STEP, "listen", ann.peer().listen(filter)).await.expect("listen");
    assert_eq!(listening.acknowledged().resource_subscriptions.as_deref(), Some(&[inbox.clone()][..]));

    let matched = ok(&bob, "enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(matched["status"], "matched", "{matched}");
    let bob_handle = matched["handle"].as_str().expect("handle").to_owned();
    let room = matched["room_id"].clone();

    // The push says "fetch"; the fetch says what.
    let pushed = within(STEP, "resources/updated", listening.next()).await.expect("stream").expect("open");
    match pushed {
        ServerNotification::ResourceUpdatedNotification(n) => assert_eq!(n.params.uri, inbox),
        other => panic!("expected resources/updated, got {other:?}"),
    }
    let mut cursor = 0;
    let found = fetch_until(&ann, &ann_handle, &mut cursor, "chatroom.found").await;
    assert_eq!(found["room_id"], room, "{found}");

    ok(&ann, "send_message", json!({"handle": ann_handle, "room_id": room, "message": "hi Bob"})).await;
    let mut bob_cursor = 0;
    let got = fetch_until(&bob, &bob_handle, &mut bob_cursor, "message.received").await;
    assert_eq!(got["message"], "hi Bob", "{got}");
    ok(&bob, "send_message", json!({"handle": bob_handle, "room_id": room, "message": "hi Ann"})).await;
    let got = fetch_until(&ann, &ann_handle, &mut cursor, "message.received").await;
    assert_eq!(got["message"], "hi Ann", "{got}");

    ok(&bob, "leave_chat", json!({"handle": bob_handle, "room_id": room})).await;
    let gone = fetch_until(&ann, &ann_handle, &mut cursor, "partner.disconnected").await;
    assert_eq!(gone["reason"], "left", "{gone}");

    // Without the handle rmcp gets a tool error that names it.
    let params = CallToolRequestParams::new("get_my_identity");
    let refused = within(STEP, "no handle", ann.call_tool(params)).await.expect("call");
    assert_eq!(refused.is_error, Some(true));
    let data = refused.structured_content.unwrap_or(Value::Null);
    assert_eq!(data["error"], "handle_required", "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_with_the_tasks_extension_polls_send_message_and_wait() {
    let server = ServerProcess::start(&[]).await;
    let ann = connect(&server.url, true).await;
    let bob = connect(&server.url, false).await;
    let ann_handle = ok(&ann, "checkin_client", json!({"client_id": "ann"})).await["handle"]
        .as_str()
        .expect("handle")
        .to_owned();
    let bob_handle = ok(&bob, "checkin_client", json!({"client_id": "bob"})).await["handle"]
        .as_str()
        .expect("handle")
        .to_owned();

    let Value::Object(arguments) =
        json!({"handle": ann_handle, "recipient_id": "bob", "message": "ready?", "timeout": 30})
    else {
        unreachable!()
    };
    let params = CallToolRequestParams::new("send_message_and_wait").with_arguments(arguments);
    let response = within(STEP, "tools/call as a task", ann.call_tool_once(params)).await.expect("call");
    let CallToolResponse::Task(created) = response else { panic!("expected a task, got {response:?}") };
    let task_id = created.task.task_id.clone();

    let mut cursor = 0;
    let asked = fetch_until(&bob, &bob_handle, &mut cursor, "message.received").await;
    assert_eq!(asked["message"], "ready?", "{asked}");
    ok(&bob, "send_message", json!({"handle": bob_handle, "recipient_id": "ann", "message": "ready"})).await;

    let mut finished = None;
    for _ in 0..100 {
        let got = within(STEP, "tasks/get", ann.peer().get_task(GetTaskParams::new(task_id.clone())))
            .await
            .expect("tasks/get");
        if got.task.status().is_terminal() {
            finished = Some(got.task);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = finished.expect("the task finished");
    let TaskPayload::Completed { result } = finished.payload else {
        panic!("expected completed: {finished:?}")
    };
    let data = &result["structuredContent"];
    assert_eq!(data["status"], "replied", "{data}");
    assert_eq!(data["reply"]["message"], "ready", "{data}");
}
