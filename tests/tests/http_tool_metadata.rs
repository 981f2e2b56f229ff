//! What hosts read from `tools/list` besides names and input schemas: a human `title`,
//! the behaviour hints they use for auto-approval, and an `outputSchema` that every
//! result's `structuredContent` really matches.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use tests::{STEP, ServerProcess, TestClient, ToolOutcome};

/// The hints each tool must carry: (name, readOnly, destructive, idempotent, openWorld).
/// The reasoning is in docs/PROTOCOL.md ("Tool annotations").
const HINTS: [(&str, bool, bool, bool, bool); 14] = [
    ("block_partner", false, true, false, false),
    ("checkin_client", false, false, true, false),
    ("enter_queue", false, false, true, false),
    ("get_history", true, false, true, false),
    ("get_messages", false, false, false, false),
    ("get_my_identity", true, false, true, false),
    ("leave_chat", false, true, true, false),
    ("leave_queue", false, false, true, false),
    ("list_clients", true, false, true, false),
    ("resume_session", false, false, true, false),
    ("send_message", false, false, false, true),
    ("send_message_and_wait", false, false, false, true),
    ("set_typing", false, false, true, false),
    ("wait_for_events", false, false, true, false),
];

async fn list_tools(client: &TestClient) -> Vec<Value> {
    let tools = tests::within(STEP, "tools/list", client.peer().list_all_tools()).await.expect("tools/list");
    let tools = serde_json::to_value(&tools).expect("json");
    tools.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_has_a_title_and_honest_annotations() {
    let server = ServerProcess::start(&[]).await;
    let client = server.client().await;
    let tools = list_tools(&client).await;
    assert_eq!(tools.len(), HINTS.len(), "one row per tool");
    for (name, read_only, destructive, idempotent, open_world) in HINTS {
        let tool = tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no tool {name}"));
        let title = tool["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty() && title != name, "{name} needs a human title: {tool}");
        let hints = &tool["annotations"];
        assert_eq!(hints["title"], title, "{name}: annotations.title for 2025-03-26 hosts");
        assert_eq!(hints["readOnlyHint"], read_only, "{name} readOnlyHint");
        assert_eq!(hints["destructiveHint"], destructive, "{name} destructiveHint");
        assert_eq!(hints["idempotentHint"], idempotent, "{name} idempotentHint");
        assert_eq!(hints["openWorldHint"], open_world, "{name} openWorldHint");
    }
}

/// Compiled output schemas, as advertised and in a strict form that also refuses
/// properties the schema does not declare (so a field the server adds without
/// describing it fails here, while clients stay free to ignore extras).
struct Schemas {
    advertised: BTreeMap<String, jsonschema::Validator>,
    strict: BTreeMap<String, jsonschema::Validator>,
    seen_ok: BTreeSet<String>,
    seen_error: BTreeSet<String>,
}

/// Adds `additionalProperties: false` to every object schema that lists properties
/// and says nothing about others.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

fn compile(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("invalid outputSchema: {e}\n{schema:#}"))
}

impl Schemas {
    fn new(tools: &[Value]) -> Schemas {
        let mut advertised = BTreeMap::new();
        let mut strict_map = BTreeMap::new();
        for tool in tools {
            let name = tool["name"].as_str().expect("name").to_owned();
            let schema = &tool["outputSchema"];
            assert!(schema.is_object(), "{name} has no outputSchema");
            // Hosts on 2025-06-18 and 2025-11-25 require an object schema at the root.
            assert_eq!(schema["type"], "object", "{name}: outputSchema root must be an object schema");
            advertised.insert(name.clone(), compile(schema));
            let mut tight = schema.clone();
            strict(&mut tight);
            strict_map.insert(name, compile(&tight));
        }
        Schemas { advertised, strict: strict_map, seen_ok: BTreeSet::new(), seen_error: BTreeSet::new() }
    }

    /// Validates one result of `tool`; returns it for the scenario to go on with.
    fn check(&mut self, tool: &str, outcome: ToolOutcome) -> ToolOutcome {
        let data = &outcome.data;
        assert!(data.is_object(), "{tool}: structuredContent must be present: {}", outcome.text);
        for (form, validators) in [("advertised", &self.advertised), ("strict", &self.strict)] {
            let validator = validators.get(tool).unwrap_or_else(|| panic!("no schema for {tool}"));
            let errors: Vec<String> = validator.iter_errors(data).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{tool} result does not match its {form} outputSchema: {errors:#?}\n{data:#}"
            );
        }
        if outcome.is_error {
            self.seen_error.insert(tool.to_owned());
        } else {
            self.seen_ok.insert(tool.to_owned());
        }
        outcome
    }

    async fn call(&mut self, client: &TestClient, tool: &str, arguments: Value) -> ToolOutcome {
        let outcome = client.call(tool, arguments).await;
        self.check(tool, outcome)
    }

    async fn ok(&mut self, client: &TestClient, tool: &str, arguments: Value) -> Value {
        let outcome = self.call(client, tool, arguments).await;
        assert!(!outcome.is_error, "{tool} failed: {}", outcome.text);
        outcome.data
    }

    async fn err(&mut self, client: &TestClient, tool: &str, arguments: Value) -> Value {
        let outcome = self.call(client, tool, arguments).await;
        assert!(outcome.is_error, "{tool} should have failed: {}", outcome.text);
        outcome.data
    }
}

fn event_types(events: &Value) -> Vec<String> {
    events["events"]
        .as_array()
        .map(|list| list.iter().filter_map(|e| e["type"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Calls every tool, in the shapes its result can take (waiting and matched, room and
/// direct, replied and timed out, every event type, errors), and checks each
/// `structuredContent` against the tool's advertised `outputSchema`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_result_matches_its_output_schema() {
    let server = ServerProcess::start(&["--message-ttl", "1s", "--rematch-cooldown", "0s"]).await;
    let ann = server.client().await;
    let mut s = Schemas::new(&list_tools(&ann).await);

    // Roulette: no identity, waiting, leaving the queue, matched, chatting.
    s.ok(&ann, "get_my_identity", json!({})).await;
    s.err(&ann, "wait_for_events", json!({"timeout": 0})).await;
    s.err(&ann, "list_clients", json!({})).await;
    s.err(&ann, "enter_queue", json!({"user_id": "not an id!"})).await;
    let waiting = s.ok(&ann, "enter_queue", json!({"display_name": "Ann", "interests": ["rust"]})).await;
    assert_eq!(waiting["status"], "waiting");
    s.ok(&ann, "get_my_identity", json!({})).await;
    s.ok(&ann, "leave_queue", json!({})).await;
    s.ok(&ann, "enter_queue", json!({"interests": "rust, chess"})).await;
    let bob = server.client().await;
    let matched = s.ok(&bob, "enter_queue", json!({"display_name": "Bob", "interests": ["rust"]})).await;
    assert_eq!(matched["status"], "matched", "{matched}");
    let room = matched["room_id"].as_str().expect("room").to_owned();
    s.ok(&ann, "get_my_identity", json!({})).await;
    s.ok(&ann, "set_typing", json!({"room_id": room})).await;
    s.ok(&ann, "send_message", json!({"room_id": room, "message": "Hi Bob!"})).await;
    s.err(&ann, "send_message", json!({"message": "to nobody"})).await;
    s.err(&ann, "send_message", json!({"room_id": room})).await; // `message` missing
    s.err(&ann, "enter_queue", json!({})).await; // already in a room
    s.ok(&bob, "get_history", json!({"room_id": room})).await;
    s.err(&bob, "get_history", json!({"room_id": "r_0000000000000000"})).await;
    let got = s.ok(&bob, "wait_for_events", json!({"timeout": 0})).await;
    assert_eq!(event_types(&got), ["chatroom.found", "partner.typing", "message.received"], "{got}");

    // Leaving with requeue (waiting, then matched), ending rooms, blocking.
    let left = s.ok(&bob, "leave_chat", json!({"room_id": room, "requeue": true})).await;
    assert_eq!(left["requeued"]["status"], "waiting", "{left}");
    s.ok(&ann, "leave_chat", json!({"room_id": room})).await;
    let ended = s.ok(&ann, "get_history", json!({"room_id": room})).await;
    assert!(ended["ended_reason"].is_string(), "{ended}");
    let got = s.ok(&ann, "wait_for_events", json!({"timeout": 0})).await;
    assert!(event_types(&got).contains(&"partner.disconnected".to_owned()), "{got}");
    let again = s.ok(&ann, "leave_chat", json!({"room_id": room, "requeue": true})).await;
    assert_eq!(again["requeued"]["status"], "matched", "the cooldown is off: {again}");
    let second = again["requeued"]["room_id"].as_str().expect("room").to_owned();
    s.ok(&ann, "block_partner", json!({"room_id": second, "reason": "testing"})).await;
    s.err(&ann, "set_typing", json!({"room_id": second})).await;
    s.err(&ann, "leave_chat", json!({"room_id": "r_0000000000000000"})).await;
    s.err(&ann, "block_partner", json!({"room_id": "r_0000000000000000"})).await;

    // Agent messaging: check-in, listing, direct messages with and without an implicit
    // check-in, peeking, both endings of send_message_and_wait.
    let carol = server.client().await;
    let checked_in = s
        .ok(
            &carol,
            "checkin_client",
            json!({"client_id": "carol", "name": "Carol", "capabilities": "review, rust"}),
        )
        .await;
    let token = checked_in["resume_token"].as_str().expect("token").to_owned();
    s.err(&carol, "checkin_client", json!({"client_id": "someone-else"})).await;
    s.ok(&carol, "list_clients", json!({})).await;
    let dave = server.client().await;
    let mail = s.ok(&dave, "get_messages", json!({"client_id": "dave", "peek": true})).await;
    assert!(mail["checked_in"].is_object(), "implicit check-in: {mail}");
    s.ok(&carol, "send_message", json!({"recipient_id": "dave", "message": "hi Dave"})).await;
    s.err(&carol, "send_message", json!({"recipient_id": "nobody-yet", "message": "hi"})).await;
    s.err(&carol, "send_message", json!({"recipient_id": "carol", "message": "me"})).await;
    s.ok(&dave, "get_messages", json!({"client_id": "dave", "peek": true})).await;
    s.ok(&dave, "get_messages", json!({"limit": 5})).await;
    s.err(&dave, "get_messages", json!({"client_id": "not-dave"})).await;
    let frank = server.client().await;
    let sent = s
        .ok(
            &frank,
            "send_message",
            json!({"recipient_id": "carol", "message": "hello", "sender_id": "frank"}),
        )
        .await;
    assert!(sent["checked_in"].is_object(), "implicit check-in: {sent}");
    let timed_out = s
        .ok(
            &carol,
            "send_message_and_wait",
            json!({"recipient_id": "dave", "message": "still there?", "timeout": 0.2}),
        )
        .await;
    assert_eq!(timed_out["status"], "timeout");
    s.err(&carol, "send_message_and_wait", json!({"recipient_id": "dave", "message": "x", "timeout": -1}))
        .await;
    let got = s.ok(&dave, "wait_for_events", json!({"timeout": 0})).await;
    assert!(event_types(&got).contains(&"message.received".to_owned()), "a direct message event: {got}");
    let wait = carol.call(
        "send_message_and_wait",
        json!({"recipient_id": "dave", "message": "answer me", "timeout": 10}),
    );
    let answer = async {
        // Earlier pushes are still queued: answer only once the question has arrived.
        while dave.next("message.received", STEP).await["message"] != "answer me" {}
        dave.ok("send_message", json!({"recipient_id": "carol", "message": "here"})).await;
    };
    let (replied, ()) = tokio::join!(wait, answer);
    let replied = s.check("send_message_and_wait", replied);
    assert_eq!(replied.data["status"], "replied", "{}", replied.text);
    s.ok(&carol, "get_messages", json!({})).await;
    s.ok(&carol, "get_my_identity", json!({})).await;

    // Resuming, and an expired message.
    let carol_again = server.client().await;
    s.err(&carol_again, "resume_session", json!({"user_id": "carol", "resume_token": "rt_wrong"})).await;
    s.ok(&carol_again, "resume_session", json!({"user_id": "carol", "resume_token": token})).await;
    server.known_client("ghost").await;
    s.ok(&carol_again, "send_message", json!({"recipient_id": "ghost", "message": "boo"})).await;
    let expired = tests::within(STEP, "message.expired", async {
        loop {
            let got = s.ok(&carol_again, "wait_for_events", json!({"timeout": 2})).await;
            if event_types(&got).contains(&"message.expired".to_owned()) {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(expired["events"].is_array());

    let tools: BTreeSet<String> = s.advertised.keys().cloned().collect();
    assert_eq!(s.seen_ok, tools, "every tool was checked on success");
    assert!(s.seen_error.len() >= 10, "errors checked for {:?}", s.seen_error);
}
