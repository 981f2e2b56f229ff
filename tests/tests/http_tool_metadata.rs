//! What hosts read from `tools/list` besides names and input schemas: a human `title`
//! and the behaviour hints they use for auto-approval.

use serde_json::Value;
use tests::{STEP, ServerProcess, TestClient};

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
