//! The server's settings as plain data, independent of how they were given.
//!
//! `cli.rs` builds a [`ServerConfig`] from flags and environment variables; tests build
//! one directly. Everything here has a documented default via [`ServerConfig::default`].

use std::net::SocketAddr;
use std::time::Duration;

use chat_core::Limits;

/// Settings of the HTTP adapter. The core's own limits live in [`ServerConfig::limits`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen. Port 0 picks a free port (printed on stdout at start-up).
    pub listen: SocketAddr,
    /// The listening socket's backlog: connections the kernel queues before the server
    /// accepts them. A burst of clients beyond it waits for SYN retries (a second or more).
    pub listen_backlog: u32,
    /// Bearer token required on every request when set.
    pub auth_token: Option<String>,
    /// Accepted `Host` header values (`host` or `host:port`); empty = any host.
    pub allowed_hosts: Vec<String>,
    /// Accepted `Origin` header values (`scheme://host[:port|:*]` or `null`).
    /// Requests without an `Origin` header are always accepted (non-browser clients).
    pub allowed_origins: Vec<String>,
    /// The core's limits (sizes, rates, grace periods, TTLs).
    pub limits: Limits,
    /// Client ids registered by the operator (`--clients-file`), with their secrets.
    pub registered: Vec<chat_core::Registered>,
    /// Interval of server-to-client `ping` requests on sessions with an open GET stream,
    /// so that a stream to a client that vanished fails to write and drops.
    pub keepalive_ping: Duration,
    /// Frames handed to a GET stream this recently before it broke may not have reached
    /// the client: they are sent again on its next stream (same ids and `seq`s, so a
    /// client drops what it already has).
    pub redeliver_window: Duration,
    /// Recent messages each session keeps for a GET stream that reconnects with
    /// `Last-Event-ID` (0: no replay).
    pub stream_replay: usize,
    /// Interval of SSE keep-alive comments on open streams.
    pub sse_keep_alive: Duration,
    /// The reconnection delay (`retry:`, in milliseconds on the wire) an SSE stream's
    /// priming event gives the client: how long it waits before reopening a stream that
    /// broke. Default 1 s: well inside the stream grace (3 s), so a client that honours it
    /// is back before its partner is told `partner.reconnecting`.
    pub sse_retry: Duration,
    /// `wait_for_events` timeout when the caller gives none.
    pub wait_default: Duration,
    /// Largest `wait_for_events` timeout; below common 60 s client request timeouts.
    pub wait_max: Duration,
    /// `send_message_and_wait` timeout when the caller gives none (seed default 60 s).
    pub send_wait_default: Duration,
    /// Largest `send_message_and_wait` timeout.
    pub send_wait_max: Duration,
    /// Interval of `notifications/progress` while a tool waits (when a token was given).
    pub progress_interval: Duration,
    /// How long a task (`send_message_and_wait` for a client with the tasks extension) is
    /// kept: one still waiting after it is failed, a finished one is kept as long again
    /// for `tasks/get`. Longer than `send_wait_max`.
    pub task_ttl: Duration,
    /// The polling interval a task suggests to the client (`pollIntervalMs`).
    pub task_poll_interval: Duration,
    /// Most tasks running at once on this node; beyond it the call blocks instead.
    pub max_tasks: usize,
    /// Largest accepted POST body in bytes. A request that announces more in
    /// `Content-Length` is refused with `413` before its body is read.
    pub max_request_bytes: usize,
    /// Most MCP sessions open at once; `initialize` beyond it is refused.
    pub max_sessions: usize,
    /// Most live sessions one client address may hold (IPv6: one /64); `initialize`
    /// beyond it is refused like `max_sessions`. 0 = no limit. Without it one client could
    /// open `max_sessions` sessions in seconds and lock everyone else out.
    pub max_sessions_per_address: usize,
    /// A new connection must deliver its first request's headers within this. Without
    /// it, a client that connects and sends nothing (or trickles header bytes) holds a
    /// socket forever, and `--auth-token` cannot help: its `401` needs the headers.
    pub header_timeout: Duration,
    /// A request body must arrive in full within this of the handler starting to read
    /// it; a slower one gets `408` and the connection is closed.
    pub body_timeout: Duration,
    /// A kept-alive connection must deliver its next request's headers within this of
    /// the previous response ending, or it is closed. Open GET streams and blocking calls
    /// are responses in progress, so they are never cut by it.
    pub idle_connection_timeout: Duration,
    /// Most TCP connections open at once. A connection beyond it is answered `503` and
    /// closed at once, so the accept loop never stalls and file descriptors stay free.
    pub max_connections: usize,
    /// A session whose client has answered a keep-alive `ping` before and now leaves one
    /// unanswered this long (while its stream is not busy draining a backlog) has its GET
    /// stream ended like a dropped one: a client that is stopped (SIGSTOP) or hung keeps
    /// its TCP connection up, so only its silence shows it is gone.
    pub ping_timeout: Duration,
    /// Wrong resume tokens (on `resume_session`, `checkin_client`, `enter_queue`) one
    /// client address may present per `bad_token_window` before its calls with a resume
    /// token are refused (`too_many_bad_tokens`) until the budget refills.
    pub max_bad_tokens: u32,
    /// The window of `max_bad_tokens`: the budget refills at `max_bad_tokens` per window.
    pub bad_token_window: Duration,
    /// How long shutdown waits for pending notifications to flush before closing streams.
    pub shutdown_flush: Duration,
    /// Where the chat is kept (`--store`): `memory` (nothing outlives the process) or
    /// `sqlite:PATH` (every input is logged before it is applied; a restart resumes) or
    /// `redis://…` (a log shared by several nodes).
    pub store: crate::store::StoreUrl,
    /// How hard a durable store flushes each commit to the disk (`--store-sync`).
    pub store_sync: crate::store::Sync,
    /// A snapshot is taken after this many logged inputs (and at shutdown), so start-up
    /// replays at most about this many.
    pub snapshot_every: u64,
    /// A snapshot is also taken when this much time passed since the last one and
    /// something was logged meanwhile.
    pub snapshot_interval: Duration,
    /// Most inputs written in one commit (group commit: every input that arrived while
    /// the previous commit ran goes into the next, up to this many).
    pub journal_batch: usize,
    /// With a Redis store: the prefix of its keys (`--redis-prefix`).
    pub redis_prefix: String,
    /// With a Redis store: how often this node logs a heartbeat (`--node-heartbeat`).
    pub node_heartbeat: Duration,
    /// With a Redis store: how long a request waits for Redis (`--redis-timeout`).
    pub redis_timeout: Duration,
}

impl ServerConfig {
    /// Hosts accepted when none are configured: loopback only (DNS-rebinding protection).
    pub const DEFAULT_ALLOWED_HOSTS: [&'static str; 3] = ["localhost", "127.0.0.1", "::1"];
    /// Origins accepted when none are configured: loopback pages on any port.
    pub const DEFAULT_ALLOWED_ORIGINS: [&'static str; 6] = [
        "http://localhost:*",
        "https://localhost:*",
        "http://127.0.0.1:*",
        "https://127.0.0.1:*",
        "http://[::1]:*",
        "https://[::1]:*",
    ];
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8123)),
            listen_backlog: 1024,
            auth_token: None,
            allowed_hosts: Self::DEFAULT_ALLOWED_HOSTS.map(String::from).to_vec(),
            allowed_origins: Self::DEFAULT_ALLOWED_ORIGINS.map(String::from).to_vec(),
            limits: Limits::default(),
            registered: Vec::new(),
            keepalive_ping: Duration::from_secs(60),
            redeliver_window: Duration::from_secs(2),
            stream_replay: 32,
            sse_keep_alive: Duration::from_secs(15),
            sse_retry: Duration::from_secs(1),
            wait_default: Duration::from_secs(25),
            wait_max: Duration::from_secs(50),
            send_wait_default: Duration::from_secs(60),
            send_wait_max: Duration::from_secs(300),
            progress_interval: Duration::from_secs(10),
            task_ttl: Duration::from_secs(600),
            task_poll_interval: Duration::from_secs(1),
            max_tasks: 10_000,
            max_request_bytes: 1024 * 1024,
            max_sessions: 10_000,
            max_sessions_per_address: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(60),
            max_connections: 16_384,
            ping_timeout: Duration::from_secs(30),
            max_bad_tokens: 10,
            bad_token_window: Duration::from_secs(60),
            shutdown_flush: Duration::from_secs(2),
            store: crate::store::StoreUrl::Memory,
            store_sync: crate::store::Sync::Full,
            snapshot_every: 100_000,
            snapshot_interval: Duration::from_secs(300),
            journal_batch: 4096,
            redis_prefix: "mcp-chat".into(),
            node_heartbeat: Duration::from_secs(2),
            redis_timeout: Duration::from_secs(5),
        }
    }
}
