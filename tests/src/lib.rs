//! End-to-end test support for mcp-chat: start the real `chat-mcp-http` binary on a free
//! loopback port, connect rmcp clients to it over real HTTP, and record what they are
//! pushed. Everything that waits is bounded by a timeout, so a broken server fails a test
//! instead of hanging it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

#[allow(deprecated)] // logging is "legacy-only" in rmcp 3.9 but current for 2025-11-25 servers.
use rmcp::model::LoggingMessageNotificationParam;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, CustomNotification,
    Implementation, ProgressNotificationParam, ProtocolVersion, RequestMetaObject,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};

pub mod redis;
pub use redis::RedisServer;

/// Default bound for a single step of a test (a tool call, a notification).
pub const STEP: Duration = Duration::from_secs(10);

/// Runs `attempt` every 100 ms until it succeeds, for up to about 6 s (a server that is
/// restarting, a client moving to another node, a node that has not yet applied what
/// another one did); returns its value, or panics with the last error.
pub async fn eventually<F, Fut>(what: &str, mut attempt: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Value, String>>,
{
    let mut last = String::new();
    for _ in 0..60 {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not succeed: {last}")
}

/// Runs `future`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

// ----- the server binary -----

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// The newest modification time of the sources a binary is built from.
fn newest_source(package: &str) -> Option<std::time::SystemTime> {
    fn walk(dir: &std::path::Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(Some(modified));
            }
        }
    }
    let root = workspace_root();
    let mut newest = None;
    for dir in [root.join(package).join("src"), root.join("chat-core").join("src")] {
        walk(&dir, &mut newest);
    }
    newest
}

/// Path of a workspace binary next to the running test executable
/// (`target/<profile>/deps/<test>` -> `target/<profile>/<name>`), built once per test
/// process if it is missing or older than its sources.
///
/// `cargo test --workspace` builds a package's binaries only for that package's own
/// integration tests (chat-mcp-http has one, `tests/cli.rs`), so a plain
/// `cargo test -p tests` may need this build (and would otherwise test a stale binary).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile> directory").to_path_buf();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let lock = BUILT.get_or_init(|| std::sync::Mutex::new(Vec::new()));
    let mut built = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let stale = || {
        let built_at = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        built_at.is_none() || newest_source(name) > built_at
    };
    if !built.iter().any(|b| b == name) && stale() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", name, "--bin", name])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {name} failed");
        built.push(name.to_owned());
    }
    assert!(path.exists(), "{} not found", path.display());
    path
}

/// Waits for a `chat-mcp-http` child (stdout piped) to print the URL it listens on, then
/// keeps draining its stdout so it never blocks on a full pipe.
pub async fn listening_url(child: &mut tokio::process::Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = within(STEP, "server prints its address", async {
        loop {
            let line = lines.next_line().await.expect("read stdout").expect("server exited before listening");
            if let Some(url) = line.strip_prefix("mcp-chat listening on ") {
                break url.trim().to_owned();
            }
        }
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    url
}

/// The real `chat-mcp-http` process, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://addr`.
    pub base: String,
    /// `http://addr/mcp`.
    pub url: String,
    /// The bearer token the server was started with, if any.
    pub token: Option<String>,
}

impl ServerProcess {
    /// Starts the server on a free loopback port with extra `args`, and waits until
    /// `/healthz` answers. Test-friendly defaults (short stream grace) can be overridden
    /// by passing the flag again. Set `MCP_CHAT_TEST_LOGS=1` to see the server's logs.
    pub async fn start(args: &[&str]) -> ServerProcess {
        let token = args.windows(2).find(|w| w[0] == "--auth-token").map(|w| w[1].to_owned());
        let mut command =
            Command::new(tokio::task::spawn_blocking(|| binary("chat-mcp-http")).await.expect("build"));
        command
            .args(["--host", "127.0.0.1", "--port", "0", "--stream-grace", "500ms", "--shutdown-flush", "1s"])
            .args(args)
            .env_remove("RUST_LOG")
            .env("LOG_LEVEL", std::env::var("MCP_CHAT_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("MCP_CHAT_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn chat-mcp-http");
        let url = listening_url(&mut child).await;
        let base = url.trim_end_matches("/mcp").to_owned();
        let addr: SocketAddr = base.trim_start_matches("http://").parse().expect("socket address");
        let server = ServerProcess { child, addr, base, url, token };
        within(STEP, "healthz answers", async {
            loop {
                if let Ok(r) = server.get("/healthz").await
                    && r.status().is_success()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        server
    }

    /// Checks `client_id` in on a session of its own, which then ends (so mail to it is
    /// held: direct messages go only to clients that exist); returns its resume token.
    pub async fn known_client(&self, client_id: &str) -> String {
        let client = self.client().await;
        let checked = client.ok("checkin_client", json!({ "client_id": client_id })).await;
        client.close().await;
        checked["resume_token"].as_str().expect("a resume token").to_owned()
    }

    /// `GET base + path` with the server's token, if any.
    pub async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        let mut request = http().get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await
    }

    /// A connected rmcp client (with the server's token).
    pub async fn client(&self) -> TestClient {
        TestClient::connect(&self.url, self.token.as_deref()).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed or said) and waits.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("kill chat-mcp-http");
        within(STEP, "server dies after SIGKILL", self.child.wait()).await.expect("wait for server");
    }

    /// Starts the server again on the same address with `args` (after [`Self::kill`] or
    /// [`Self::terminate`]), e.g. on the same `--store`: clients configured with the old
    /// URL reach the new process.
    pub async fn restart(&mut self, args: &[&str]) {
        let port = self.addr.port().to_string();
        let mut with_port: Vec<&str> = args.to_vec();
        with_port.extend(["--port", &port]);
        let token = self.token.clone();
        let next = ServerProcess::start(&with_port).await;
        assert_eq!(next.addr, self.addr, "the restarted server listens where the old one did");
        *self = next;
        self.token = token.or(self.token.take());
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        within(limit, "server exits after SIGTERM", self.child.wait()).await.expect("wait for server")
    }
}

// ----- HTTP -----

/// One pooled HTTP client for every test connection (rmcp's `from_uri` would open a new
/// TCP connection per request).
pub fn http() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("reqwest client")
        })
        .clone()
}

/// The JSON-RPC messages of a POST response body: the server answers with either one
/// `application/json` message or an SSE stream whose `data:` payloads carry them.
pub fn rpc_messages(body: &str) -> Vec<Value> {
    if body.trim_start().starts_with('{') {
        return serde_json::from_str(body).into_iter().collect();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// A hand-driven MCP session over raw HTTP, for what rmcp's client will not do:
/// malformed bodies, foreign origins, vanishing without DELETE.
pub struct RawSession {
    /// The MCP endpoint.
    pub url: String,
    /// `Mcp-Session-Id`.
    pub id: String,
    token: Option<String>,
    next_id: u64,
}

impl RawSession {
    /// `initialize` + `notifications/initialized`.
    pub async fn open(url: &str, token: Option<&str>) -> RawSession {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"}}});
        let response = within(STEP, "initialize", raw_post(url, token, None, &body.to_string())).await;
        assert!(response.status().is_success(), "initialize: {}", response.status());
        let id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("mcp-session-id header")
            .to_owned();
        let _ = response.text().await;
        let mut session = RawSession { url: url.to_owned(), id, token: token.map(str::to_owned), next_id: 1 };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = session.post_raw(&initialized.to_string()).await;
        assert_eq!(response.status().as_u16(), 202);
        session.next_id = 1;
        session
    }

    /// The same session, reached at another endpoint (another node of the chat).
    pub fn via(&self, url: &str) -> RawSession {
        RawSession {
            url: url.to_owned(),
            id: self.id.clone(),
            token: self.token.clone(),
            next_id: self.next_id + 1000,
        }
    }

    /// POSTs `body` as is in this session.
    pub async fn post_raw(&self, body: &str) -> reqwest::Response {
        within(STEP, "raw POST", raw_post(&self.url, self.token.as_deref(), Some(&self.id), body)).await
    }

    /// Calls a tool; returns the JSON-RPC response message.
    pub async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        let text = self.post_raw(&body.to_string()).await.text().await.expect("body");
        rpc_messages(&text).into_iter().find(|m| m.get("id").is_some()).expect("a JSON-RPC response")
    }

    /// Opens the session's GET (SSE) stream; the connection closes when it is dropped.
    pub async fn open_stream(&self) -> reqwest::Response {
        self.open_stream_after(None).await
    }

    /// Opens the GET stream with `Last-Event-ID: last` (a reconnect), or without it.
    pub async fn open_stream_after(&self, last: Option<&str>) -> reqwest::Response {
        // A dedicated client so dropping the stream really closes its TCP connection.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        let mut request = client
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = within(STEP, "open GET stream", request.send()).await.expect("GET stream");
        assert!(response.status().is_success(), "GET stream: {}", response.status());
        response
    }
}

/// Reads SSE events (id, JSON data) from a GET stream response.
pub struct SseEvents {
    response: reqwest::Response,
    buffer: String,
}

impl SseEvents {
    /// A reader of `response`'s body.
    pub fn new(response: reqwest::Response) -> Self {
        SseEvents { response, buffer: String::new() }
    }

    /// The next event carrying JSON data (comments, keep-alives and priming events are
    /// skipped); fails the test after [`STEP`] or if the stream ends.
    pub async fn next(&mut self) -> (Option<String>, Value) {
        match self.try_next(STEP).await {
            Some(event) => event,
            None => panic!("no SSE event within {STEP:?}"),
        }
    }

    /// The next event carrying JSON data, or `None` if none comes within `limit` or the
    /// stream ends.
    pub async fn try_next(&mut self, limit: Duration) -> Option<(Option<String>, Value)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let id = block.lines().find_map(|l| l.strip_prefix("id:")).map(|v| v.trim().to_owned());
                let data: String =
                    block.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                if let Ok(value) = serde_json::from_str(&data) {
                    return Some((id, value));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?;
            let chunk = chunk.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event with this method.
    pub async fn next_method(&mut self, method: &str) -> (Option<String>, Value) {
        loop {
            let (id, value) = self.next().await;
            if value["method"] == method {
                return (id, value);
            }
        }
    }
}

/// Starts the ignored test `name` of the running test binary as a child process with
/// `MCP_CHAT_CHILD_URL=url` (a client in a process of its own, to kill or stop), and waits
/// until it prints `READY <user_id>`. Returns the child and that id.
pub async fn spawn_child_client(name: &str, url: &str) -> (Child, String) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads", "1"])
        .env("MCP_CHAT_CHILD_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child client");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let id = within(STEP, "child client is ready", async {
        loop {
            let line = lines.next_line().await.expect("read").expect("child exited early");
            // libtest prints "test NAME ... " on the same line first.
            if let Some((_, id)) = line.split_once("READY ") {
                break id.trim().to_owned();
            }
        }
    })
    .await;
    (child, id)
}

/// A TCP proxy on a free loopback port that can drop every connection and refuse new
/// ones, like a network cut between a client and the server.
pub struct NetworkCut {
    /// The proxy's address.
    pub addr: SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    target: std::sync::Arc<std::sync::Mutex<SocketAddr>>,
}

impl NetworkCut {
    /// A proxy to `target`, up.
    pub async fn start(target: SocketAddr) -> NetworkCut {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let target = std::sync::Arc::new(std::sync::Mutex::new(target));
        let (up2, connections2, target2) = (up.clone(), connections.clone(), target.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let target = *target2.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections2
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(task.abort_handle());
            }
        });
        NetworkCut { addr, up, connections, target }
    }

    /// Sends new connections to `target` from now on and drops the open ones, as a
    /// load balancer does when the server behind it dies (clients reconnect through it).
    pub fn switch_to(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = target;
        self.cut();
        self.restore();
    }

    /// `http://addr/mcp` through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut connections = self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for connection in connections.drain(..) {
            connection.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// POSTs a JSON-RPC body to `url` with the headers MCP requires.
pub async fn raw_post(
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session).header("mcp-protocol-version", "2025-11-25");
    }
    request.send().await.expect("POST")
}

// ----- rmcp client -----

/// Something the server pushed to a client.
#[derive(Clone, Debug)]
pub struct Notice {
    /// The notification method (`message.received`, `notifications/progress`, ...).
    pub method: String,
    /// Its params.
    pub params: Value,
}

/// A [`ClientHandler`] that records custom notifications, resource updates, progress and
/// log messages.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Notice>,
}

impl Recorder {
    fn record(&self, method: &str, params: Value) {
        let _ = self.tx.send(Notice { method: method.to_owned(), params });
    }
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("mcp-chat-tests", "0.1.0"))
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_custom_notification(&self, n: CustomNotification, _: NotificationContext<RoleClient>) {
        self.record(&n.method, n.params.unwrap_or(Value::Null));
    }

    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.record("notifications/resources/updated", json!({ "uri": p.uri }));
    }

    async fn on_progress(&self, p: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        self.record("notifications/progress", serde_json::to_value(&p).unwrap_or(Value::Null));
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        p: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.record("notifications/message", serde_json::to_value(&p).unwrap_or(Value::Null));
    }
}

/// An rmcp client over real HTTP that remembers what it was pushed.
pub struct TestClient {
    service: RunningService<RoleClient, Recorder>,
    rx: Mutex<mpsc::UnboundedReceiver<Notice>>,
    seen: Mutex<VecDeque<Notice>>,
}

/// How a tool call came back.
#[derive(Clone, Debug)]
pub struct ToolOutcome {
    /// `isError`.
    pub is_error: bool,
    /// The text content, joined.
    pub text: String,
    /// `structuredContent` (or `null`).
    pub data: Value,
}

impl TestClient {
    /// Connects (initialize handshake, GET stream) with the shared pooled HTTP client,
    /// pinned to the newest protocol version that has sessions.
    pub async fn connect(url: &str, token: Option<&str>) -> TestClient {
        Self::try_connect(url, token).await.expect("connect to chat-mcp-http")
    }

    /// Like [`TestClient::connect`], returning the error instead of panicking.
    pub async fn try_connect(url: &str, token: Option<&str>) -> Result<TestClient, String> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false);
        if let Some(token) = token {
            config = config.auth_header(token);
        }
        let transport = StreamableHttpClientTransport::with_client(http(), config);
        let (tx, rx) = mpsc::unbounded_channel();
        let service = within(STEP, "MCP initialize", Recorder { tx }.serve(transport))
            .await
            .map_err(|e| e.to_string())?;
        Ok(TestClient { service, rx: Mutex::new(rx), seen: Mutex::new(VecDeque::new()) })
    }

    /// The underlying rmcp client, for requests this helper does not wrap.
    pub fn peer(&self) -> &RunningService<RoleClient, Recorder> {
        &self.service
    }

    /// Calls a tool, with `arguments` as a JSON object. Panics on a JSON-RPC error.
    pub async fn call(&self, tool: &str, arguments: Value) -> ToolOutcome {
        self.call_with_meta(tool, arguments, None).await
    }

    /// Calls a tool with request `_meta` (e.g. a progress token). Allows 70 s for
    /// waiting tools.
    pub async fn call_with_meta(
        &self,
        tool: &str,
        arguments: Value,
        meta: Option<RequestMetaObject>,
    ) -> ToolOutcome {
        let Value::Object(arguments) = arguments else { panic!("tool arguments must be an object") };
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        if let Some(meta) = meta {
            params.meta = Some(meta);
        }
        let result =
            within(Duration::from_secs(70), &format!("tools/call {tool}"), self.service.call_tool(params))
                .await
                .unwrap_or_else(|e| panic!("tools/call {tool} failed: {e}"));
        outcome(result)
    }

    /// Calls a tool; a transport or JSON-RPC error is returned, not a panic (for a
    /// server that may be restarting).
    pub async fn try_call(&self, tool: &str, arguments: Value) -> Result<ToolOutcome, String> {
        let Value::Object(arguments) = arguments else { panic!("tool arguments must be an object") };
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        match tokio::time::timeout(STEP, self.service.call_tool(params)).await {
            Ok(Ok(result)) => Ok(outcome(result)),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("tools/call {tool}: no answer within {STEP:?}")),
        }
    }

    /// Calls a tool that must succeed; returns its `structuredContent`.
    pub async fn ok(&self, tool: &str, arguments: Value) -> Value {
        let outcome = self.call(tool, arguments).await;
        assert!(!outcome.is_error, "{tool} failed: {}", outcome.text);
        outcome.data
    }

    /// Calls `tool` until it succeeds (for up to about 6 s: the server may be restarting,
    /// or the client moving to another node), then returns the result's data.
    pub async fn ok_eventually(&self, tool: &str, arguments: Value) -> Value {
        eventually(tool, || async {
            match self.try_call(tool, arguments.clone()).await? {
                outcome if !outcome.is_error => Ok(outcome.data),
                outcome => Err(outcome.text),
            }
        })
        .await
    }

    /// Calls a tool that must fail; returns its `structuredContent` (`error`, `message`).
    pub async fn err(&self, tool: &str, arguments: Value) -> Value {
        let outcome = self.call(tool, arguments).await;
        assert!(outcome.is_error, "{tool} should have failed but returned: {}", outcome.text);
        outcome.data
    }

    /// Waits for the next notification with `method` (others are kept for later calls).
    pub async fn next(&self, method: &str, limit: Duration) -> Value {
        within(limit, &format!("notification {method}"), async {
            loop {
                {
                    let mut seen = self.seen.lock().await;
                    if let Some(i) = seen.iter().position(|n| n.method == method) {
                        return seen.remove(i).map(|n| n.params).unwrap_or_default();
                    }
                }
                let notice = self.rx.lock().await.recv().await.expect("client closed");
                self.seen.lock().await.push_back(notice);
            }
        })
        .await
    }

    /// Asserts that no notification with `method` arrives within `window`.
    pub async fn none(&self, method: &str, window: Duration) {
        let got = tokio::time::timeout(window, self.next(method, window + Duration::from_secs(1))).await;
        if let Ok(params) = got {
            panic!("unexpected {method}: {params}");
        }
    }

    /// Everything pushed so far that has not been consumed by [`TestClient::next`].
    pub async fn drain(&self) -> Vec<Notice> {
        let mut rx = self.rx.lock().await;
        let mut seen = self.seen.lock().await;
        while let Ok(n) = rx.try_recv() {
            seen.push_back(n);
        }
        seen.drain(..).collect()
    }

    /// Ends the session politely (HTTP DELETE).
    pub async fn close(self) {
        let _ = within(STEP, "client cancel", self.service.cancel()).await;
    }
}

fn outcome(result: CallToolResult) -> ToolOutcome {
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    ToolOutcome {
        is_error: result.is_error == Some(true),
        text,
        data: result.structured_content.unwrap_or(Value::Null),
    }
}

/// Starts a server and returns it with `n` connected clients.
pub async fn server_with_clients(args: &[&str], n: usize) -> (ServerProcess, Vec<TestClient>) {
    let server = ServerProcess::start(args).await;
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(server.client().await);
    }
    (server, clients)
}

// ----- the session-less revision (2026-07-28) over raw HTTP -----

/// The session-less MCP revision.
pub const SESSIONLESS: &str = "2026-07-28";

/// A client of the session-less revision (2026-07-28), over raw HTTP: no `initialize`, no
/// `Mcp-Session-Id`; every request carries its protocol version and capabilities in
/// `_meta` and the `Mcp-Method` / `Mcp-Name` headers. Its identity is the `handle` the
/// first binding call returned, passed by [`Sessionless::call`].
pub struct Sessionless {
    /// The MCP endpoint.
    pub url: String,
    /// The handle of the identity this client acts as, once a binding call returned one.
    pub handle: Option<String>,
    /// The inbox URI the binding call returned.
    pub inbox_uri: Option<String>,
    /// The `clientCapabilities` every request declares.
    pub capabilities: Value,
    version: String,
    next_id: std::sync::atomic::AtomicU64,
}

impl Sessionless {
    /// A client of `url` speaking 2026-07-28.
    pub fn new(url: &str) -> Sessionless {
        Sessionless::with_version(url, SESSIONLESS)
    }

    /// A client of `url` that says it speaks `version`.
    pub fn with_version(url: &str, version: &str) -> Sessionless {
        Sessionless {
            url: url.to_owned(),
            handle: None,
            inbox_uri: None,
            capabilities: json!({}),
            version: version.to_owned(),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The same client, declaring the tasks extension (`io.modelcontextprotocol/tasks`).
    pub fn with_tasks(mut self) -> Sessionless {
        self.capabilities = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
        self
    }

    /// The request `_meta` every request of this revision carries.
    pub fn meta(&self) -> Value {
        json!({
            "io.modelcontextprotocol/protocolVersion": self.version,
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            "io.modelcontextprotocol/clientInfo": {"name": "sessionless-test", "version": "1"},
        })
    }

    /// POSTs a request `method` with `params` (its `_meta` added); returns the response.
    pub async fn send(&self, method: &str, mut params: Value, name: Option<&str>) -> reqwest::Response {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Value::Object(map) = &mut params {
            let meta = map.entry("_meta").or_insert_with(|| json!({}));
            if let (Value::Object(meta), Value::Object(ours)) = (meta, self.meta()) {
                meta.extend(ours);
            }
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut request = http()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", &self.version)
            .header("mcp-method", method)
            .body(body.to_string());
        if let Some(name) = name {
            request = request.header("mcp-name", name);
        }
        within(STEP, method, request.send()).await.expect("POST")
    }

    /// A request's JSON-RPC response message.
    pub async fn request(&self, method: &str, params: Value) -> Value {
        let name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .or_else(|| params.get("taskId"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let text = self.send(method, params, name.as_deref()).await.text().await.expect("body");
        rpc_messages(&text)
            .into_iter()
            .find(|m| m.get("id").is_some() && (m.get("result").is_some() || m.get("error").is_some()))
            .unwrap_or_else(|| panic!("{method}: no JSON-RPC response in {text}"))
    }

    /// Calls `tool` with `arguments`, adding this client's handle when it has one; returns
    /// the `result`. A binding tool's handle and inbox URI are kept.
    pub async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let response = self.call_as_is(tool, self.with_handle(arguments)).await;
        let data = &response["structuredContent"];
        if response["isError"] != json!(true)
            && let Some(handle) = data["handle"].as_str()
        {
            self.handle = Some(handle.to_owned());
            self.inbox_uri = data["inbox_uri"].as_str().map(str::to_owned);
        }
        response
    }

    /// `arguments` with this client's handle added, when it has one and they name none.
    fn with_handle(&self, mut arguments: Value) -> Value {
        if let (Some(handle), Value::Object(map)) = (&self.handle, &mut arguments) {
            map.entry("handle").or_insert_with(|| json!(handle));
        }
        arguments
    }

    /// Calls `tool` with exactly `arguments`; returns the `result`.
    pub async fn call_as_is(&self, tool: &str, arguments: Value) -> Value {
        let message = within(
            Duration::from_secs(70),
            tool,
            self.request("tools/call", json!({"name": tool, "arguments": arguments})),
        )
        .await;
        assert!(message.get("error").is_none(), "{tool}: JSON-RPC error {message}");
        message["result"].clone()
    }

    /// Calls a tool that must succeed; returns its `structuredContent`.
    pub async fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments).await;
        assert_ne!(result["isError"], json!(true), "{tool} failed: {result}");
        result["structuredContent"].clone()
    }

    /// Calls `tool` (with this client's handle) until it succeeds, as
    /// [`eventually`] does: another node may not have applied the call that made the
    /// handle yet. Returns its `structuredContent`.
    pub async fn ok_eventually(&self, tool: &str, arguments: Value) -> Value {
        eventually(tool, || async {
            let result = self.call_as_is(tool, self.with_handle(arguments.clone())).await;
            if result["isError"] == json!(true) {
                Err(result.to_string())
            } else {
                Ok(result["structuredContent"].clone())
            }
        })
        .await
    }

    /// Calls a tool that must fail; returns its `result`.
    pub async fn err(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments).await;
        assert_eq!(result["isError"], json!(true), "{tool} should have failed: {result}");
        result
    }

    /// Opens `subscriptions/listen` on this client's inbox; returns the stream, after its
    /// acknowledgment.
    pub async fn listen(&self) -> SseEvents {
        let uri = self.inbox_uri.clone().expect("an inbox URI (call a binding tool first)");
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {
            "_meta": self.meta(),
            "notifications": {"resourceSubscriptions": [uri]}}});
        let response = within(
            STEP,
            "subscriptions/listen",
            client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", &self.version)
                .header("mcp-method", "subscriptions/listen")
                .body(body.to_string())
                .send(),
        )
        .await
        .expect("listen");
        assert!(response.status().is_success(), "listen: {}", response.status());
        let mut events = SseEvents::new(response);
        let (_, ack) = events.next().await;
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged", "{ack}");
        events
    }

    /// `wait_for_events` after `after_seq`, up to `timeout` s: the events' payloads.
    pub async fn events_after(&mut self, after_seq: u64, timeout: f64) -> Value {
        self.ok("wait_for_events", json!({"after_seq": after_seq, "timeout": timeout})).await
    }
}
