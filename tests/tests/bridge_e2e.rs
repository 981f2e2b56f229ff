#![allow(deprecated)] // `notifications/message` (logging) is "legacy-only" in rmcp 3.9 but still what hosts get
//! End to end: two rmcp clients, each talking stdio to its own
//! `chat-mcp-stdio-bridge` child process (as Claude Desktop would), the
//! bridges talking Streamable HTTP to the real `chat-mcp-http` server. A full
//! roulette flow must work, including the server-pushed custom notifications
//! that travel on the bridges' GET streams.

mod common_bridge;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CustomNotification, Implementation,
    LoggingMessageNotificationParam, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tests::{STEP, ServerProcess, within};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const TOKEN: &str = "bridge-e2e-secret";

/// Records the custom notifications the server pushes.
#[derive(Clone)]
struct Pushed {
    tx: mpsc::UnboundedSender<(String, Value)>,
}

impl ClientHandler for Pushed {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("bridge-e2e", "0.1.0"))
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_custom_notification(&self, n: CustomNotification, _: NotificationContext<RoleClient>) {
        let _ = self.tx.send((n.method, n.params.unwrap_or(Value::Null)));
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let params = serde_json::to_value(&params).unwrap_or(Value::Null);
        let _ = self.tx.send(("notifications/message".into(), params));
    }
}

/// An rmcp client whose transport is a bridge child process.
struct ViaBridge {
    name: &'static str,
    service: RunningService<RoleClient, Pushed>,
    rx: mpsc::UnboundedReceiver<(String, Value)>,
    stderr: Arc<Mutex<String>>,
}

impl ViaBridge {
    async fn connect(name: &'static str, url: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(common_bridge::bridge_bin());
        for var in ["MCP_CHAT_URL", "MCP_CHAT_AUTH_TOKEN", "MCP_CHAT_HEADERS", "MCP_CHAT_TIMEOUT"] {
            cmd.env_remove(var);
        }
        cmd.args(["--url", url, "--log-level", "debug"]).args(args).envs(envs.iter().copied());
        let (transport, stderr) =
            TokioChildProcess::builder(cmd).stderr(Stdio::piped()).spawn().expect("spawn bridge");
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = stderr {
            let sink = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let service = within(STEP, "initialize through the bridge", Pushed { tx }.serve(transport))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{name}: initialize via bridge failed: {e}\nbridge stderr:\n{}",
                    log.lock().map(|s| s.clone()).unwrap_or_default()
                )
            });
        ViaBridge { name, service, rx, stderr: log }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Calls a tool that must succeed; returns its structured content.
    async fn ok(&self, tool: &str, arguments: Value) -> Value {
        let Value::Object(arguments) = arguments else { panic!("arguments must be an object") };
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let result = within(STEP, tool, self.service.call_tool(params)).await.unwrap_or_else(|e| {
            panic!("{}: {tool} failed: {e}\nbridge stderr:\n{}", self.name, self.stderr())
        });
        assert_ne!(
            result.is_error,
            Some(true),
            "{}: {tool} returned an error: {:?}",
            self.name,
            result.content
        );
        result.structured_content.unwrap_or(Value::Null)
    }

    /// The next pushed notification named `method` (others are skipped).
    async fn next(&mut self, method: &str) -> Value {
        let name = self.name;
        let wait = async {
            loop {
                match self.rx.recv().await {
                    Some((m, params)) if m == method => return params,
                    Some(_) => continue,
                    None => panic!("{name}: client closed while waiting for {method}"),
                }
            }
        };
        match tokio::time::timeout(STEP, wait).await {
            Ok(params) => params,
            Err(_) => panic!("{name}: no {method} within {STEP:?}; bridge stderr:\n{}", self.stderr()),
        }
    }

    async fn close(self) {
        let _ = within(Duration::from_secs(5), "close client", self.service.cancel()).await;
    }
}

#[tokio::test]
async fn roulette_flow_through_two_bridges() {
    let server = ServerProcess::start(&["--auth-token", TOKEN]).await;
    // One bridge gets the token as --auth-token, the other through a header
    // with ${VAR} substitution, as a desktop config would pass it.
    let mut alice = ViaBridge::connect("alice", &server.url, &["--auth-token", TOKEN], &[]).await;
    let mut bob = ViaBridge::connect(
        "bob",
        &server.url,
        &["--header", "Authorization: Bearer ${BRIDGE_E2E_TOKEN}"],
        &[("BRIDGE_E2E_TOKEN", TOKEN)],
    )
    .await;

    alice.ok("enter_queue", json!({"display_name": "Alice", "interests": ["rust"]})).await;
    bob.ok("enter_queue", json!({"display_name": "Bob", "interests": ["rust"]})).await;

    let found_a = alice.next("chatroom.found").await;
    let found_b = bob.next("chatroom.found").await;
    let room = found_a["room_id"].as_str().expect("room_id").to_owned();
    assert_eq!(found_b["room_id"], room.as_str());
    assert_eq!(found_a["partner"]["display_name"], "Bob", "{found_a}");
    assert_eq!(found_b["partner"]["display_name"], "Alice", "{found_b}");
    assert!(found_a["seq"].is_u64(), "envelope seq passes through: {found_a}");

    let text = "hello through two bridges ✓ \"quoted\"\nsecond line";
    alice.ok("send_message", json!({"room_id": room, "message": text})).await;
    let got = bob.next("message.received").await;
    assert_eq!(got["message"], text);
    assert_eq!(got["room_id"], room.as_str());
    assert_eq!(got["from_name"], "Alice");

    bob.ok("leave_chat", json!({"room_id": room})).await;
    let gone = alice.next("partner.disconnected").await;
    assert_eq!(gone["room_id"], room.as_str());
    assert_eq!(gone["reason"], "left");

    alice.close().await;
    bob.close().await;
}

/// `chat-mcp-http` on a fixed port, so that it can be restarted in place.
struct FixedServer {
    child: Child,
    url: String,
}

impl FixedServer {
    async fn start(port: u16) -> FixedServer {
        let bin =
            tokio::task::spawn_blocking(|| tests::binary("chat-mcp-http")).await.expect("locate server");
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env_remove("MCP_CHAT_AUTH_TOKEN")
            .env_remove("RUST_LOG")
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chat-mcp-http");
        let url = tests::listening_url(&mut child).await;
        FixedServer { child, url }
    }

    /// Simulates a crash: no graceful shutdown, every session is lost.
    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

#[tokio::test]
async fn bridge_renews_the_session_after_a_server_restart() {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let server = FixedServer::start(port).await;
    let url = server.url.clone();
    let mut alice = ViaBridge::connect("alice", &url, &[], &[]).await;
    alice.ok("enter_queue", json!({"display_name": "Alice"})).await;

    server.kill().await;
    let server = FixedServer::start(port).await;
    assert_eq!(server.url, url);

    // The host keeps using its session as if nothing happened.
    alice.ok("enter_queue", json!({"display_name": "Alice"})).await;
    let warning = alice.next("notifications/message").await;
    assert_eq!(warning["level"], "warning", "{warning}");
    assert_eq!(warning["logger"], "chat-mcp-stdio-bridge", "{warning}");

    // The renewed session's GET stream delivers pushes from the new server.
    let mut bob = ViaBridge::connect("bob", &url, &[], &[]).await;
    bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let found = alice.next("chatroom.found").await;
    assert_eq!(found["partner"]["display_name"], "Bob", "{found}");
    bob.next("chatroom.found").await;

    alice.close().await;
    bob.close().await;
    server.kill().await;
}

#[tokio::test]
async fn on_a_durable_store_a_server_restart_is_invisible_through_the_bridge() {
    let dir = tempfile::Builder::new().prefix("mcp-chat-store-").tempdir().expect("temp dir");
    let store = format!("sqlite:{}", dir.path().join("chat.db").display());
    let mut server = ServerProcess::start(&["--store", &store]).await;
    let mut alice = ViaBridge::connect("alice", &server.url, &[], &[]).await;
    let mut bob = ViaBridge::connect("bob", &server.url, &[], &[]).await;
    alice.ok("enter_queue", json!({"display_name": "Alice"})).await;
    bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    let room = alice.next("chatroom.found").await["room_id"].as_str().expect("room_id").to_owned();
    bob.next("chatroom.found").await;

    server.kill().await;
    server.restart(&["--store", &store]).await;

    // Same sessions, same room: no renewal (which would have lost the room), and the
    // bridge's GET stream came back by itself.
    alice.ok("send_message", json!({"room_id": room, "message": "after the restart"})).await;
    assert_eq!(bob.next("message.received").await["message"], "after the restart");
    bob.ok("send_message", json!({"room_id": room, "message": "got it"})).await;
    assert_eq!(alice.next("message.received").await["message"], "got it");
    assert!(!alice.stderr().contains("renew"), "the session was renewed:\n{}", alice.stderr());

    alice.close().await;
    bob.close().await;
}

/// A host that speaks the session-less revision (2026-07-28) over stdio: no
/// `initialize`, `_meta` on every request, identity by `handle`, push through
/// `subscriptions/listen`. The bridge passes every message through unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_host_chats_through_the_bridge() {
    let server = ServerProcess::start(&[]).await;
    let mut bridge = common_bridge::BridgeProc::spawn(&["--url", &server.url], &[]);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let request = |id: u64, method: &str, mut params: Value| {
        params["_meta"] = meta.clone();
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
    };
    // Responses and notifications come back in any order: find the one wanted.
    async fn answer(bridge: &mut common_bridge::BridgeProc, id: u64) -> Value {
        loop {
            let message = bridge.recv().await;
            if message["id"] == id {
                return message;
            }
        }
    }

    bridge.send(&request(1, "server/discover", json!({}))).await;
    let discovered = answer(&mut bridge, 1).await;
    let versions = discovered["result"]["supportedVersions"].as_array().cloned().unwrap_or_default();
    assert!(versions.contains(&json!("2026-07-28")), "{discovered}");

    let call = |id: u64, tool: &str, arguments: Value| {
        request(id, "tools/call", json!({"name": tool, "arguments": arguments}))
    };
    bridge.send(&call(2, "enter_queue", json!({"display_name": "Host"}))).await;
    let queued = answer(&mut bridge, 2).await;
    let data = &queued["result"]["structuredContent"];
    let handle = data["handle"].as_str().unwrap_or_else(|| panic!("a handle: {queued}")).to_owned();
    let inbox = data["inbox_uri"].as_str().expect("inbox_uri").to_owned();

    bridge
        .send(&request(
            3,
            "subscriptions/listen",
            json!({"notifications": {"resourceSubscriptions": [inbox]}}),
        ))
        .await;
    let acknowledged = within(STEP, "the listen stream's acknowledgment", async {
        loop {
            let message = bridge.recv().await;
            if message["method"] == "notifications/subscriptions/acknowledged" {
                return message;
            }
        }
    })
    .await;
    assert_eq!(
        acknowledged["params"]["notifications"]["resourceSubscriptions"][0],
        inbox.as_str(),
        "{acknowledged}"
    );
    let partner = server.client().await;
    let matched = partner.ok("enter_queue", json!({"display_name": "Partner"})).await;
    let room_id = matched["room_id"].as_str().expect("room").to_owned();
    let updated = within(STEP, "resources/updated through the bridge", async {
        loop {
            let message = bridge.recv().await;
            if message["method"] == "notifications/resources/updated" {
                return message;
            }
        }
    })
    .await;
    assert_eq!(updated["params"]["uri"], inbox.as_str(), "{updated}");

    bridge.send(&call(4, "wait_for_events", json!({"handle": handle, "timeout": 5}))).await;
    let fetched = answer(&mut bridge, 4).await;
    let events = fetched["result"]["structuredContent"]["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| e["type"] == "chatroom.found" && e["room_id"] == room_id.as_str()),
        "{fetched}"
    );

    bridge
        .send(&call(5, "send_message", json!({"handle": handle, "room_id": room_id, "message": "via stdio"})))
        .await;
    let sent = answer(&mut bridge, 5).await;
    assert_ne!(sent["result"]["isError"], json!(true), "{sent}");
    let got = partner.next("message.received", STEP).await;
    assert_eq!(got["message"], "via stdio");
}
