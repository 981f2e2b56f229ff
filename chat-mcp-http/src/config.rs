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
    /// Largest accepted POST body in bytes.
    pub max_request_bytes: usize,
    /// Most MCP sessions open at once; `initialize` beyond it is refused.
    pub max_sessions: usize,
    /// How long shutdown waits for pending notifications to flush before closing streams.
    pub shutdown_flush: Duration,
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
            max_request_bytes: 1024 * 1024,
            max_sessions: 10_000,
            shutdown_flush: Duration::from_secs(2),
        }
    }
}
