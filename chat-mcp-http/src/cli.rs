//! Command-line interface: every setting is a flag and an environment variable.
//!
//! Defaults for the core's limits are read from [`chat_core::Limits::default`], so `--help`
//! always shows what the core actually uses.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use chat_core::Limits;
use clap::Parser;

use crate::config::ServerConfig;

/// A duration written as `500ms`, `30s`, `5m`, `2h` or a bare number of seconds (`1.5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not a duration; use e.g. 500ms, 30s, 5m or 2h"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit '{other}' in '{text}'; use ms, s, m or h")),
        };
        let secs = value * scale;
        if !secs.is_finite() || !(0.0..=10.0 * 365.0 * 86_400.0).contains(&secs) {
            return Err(format!("'{text}' is out of range"));
        }
        Ok(HumanDuration(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

fn limits() -> Limits {
    Limits::default()
}

fn defaults() -> ServerConfig {
    ServerConfig::default()
}

/// mcp-chat over Streamable HTTP: random 1-on-1 chat and agent-to-agent messaging for MCP
/// clients, with server-pushed notifications on the session's SSE stream.
///
/// Connect an MCP client to http://HOST:PORT/mcp. `GET /healthz` and `GET /metrics` serve
/// health and Prometheus metrics. Durations accept 500ms, 30s, 5m, 2h or plain seconds.
#[derive(Debug, Parser)]
#[command(name = "chat-mcp-http", version, about, long_about, args_override_self = true)]
pub struct Cli {
    /// Address to listen on. Use 0.0.0.0 to accept remote clients (then also set
    /// --allowed-host and --auth-token).
    #[arg(long, env = "MCP_SERVER_HOST", default_value = "127.0.0.1", help_heading = "Network")]
    pub host: String,

    /// TCP port; 0 picks a free one (the address is printed on stdout).
    #[arg(long, env = "MCP_SERVER_PORT", default_value_t = 8123, help_heading = "Network")]
    pub port: u16,

    /// Connections the kernel queues before the server accepts them (capped by the
    /// kernel's net.core.somaxconn). A burst of clients beyond it waits for SYN retries.
    #[arg(long, env = "MCP_CHAT_LISTEN_BACKLOG", default_value_t = defaults().listen_backlog, help_heading = "Network")]
    pub listen_backlog: u32,

    /// Require `Authorization: Bearer <TOKEN>` on every request (401 otherwise).
    #[arg(long, env = "MCP_CHAT_AUTH_TOKEN", hide_env_values = true, help_heading = "Security")]
    pub auth_token: Option<String>,

    /// Accepted Host header (`name` or `name:port`; repeat or comma-separate). Default:
    /// localhost, 127.0.0.1, ::1 (DNS-rebinding protection). `*` accepts any host.
    #[arg(
        long = "allowed-host",
        env = "MCP_CHAT_ALLOWED_HOSTS",
        value_delimiter = ',',
        help_heading = "Security"
    )]
    pub allowed_hosts: Vec<String>,

    /// Accepted Origin header (`scheme://host[:port]`, `:*` for any port, or `null`;
    /// repeat or comma-separate). Default: http(s) pages on localhost, 127.0.0.1 and [::1].
    /// Requests without Origin (non-browser clients) are always accepted. `*` accepts any.
    #[arg(
        long = "allowed-origin",
        env = "MCP_CHAT_ALLOWED_ORIGINS",
        value_delimiter = ',',
        help_heading = "Security"
    )]
    pub allowed_origins: Vec<String>,

    /// Log filter (error, warn, info, debug, trace or a tracing directive). RUST_LOG wins
    /// when set. Message bodies are never logged at info.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", help_heading = "Logging")]
    pub log_level: String,

    /// A session that never opened a GET stream (a tools-only client) counts as lost after
    /// this long without a request; its reconnect grace then starts.
    #[arg(long, env = "MCP_CHAT_SESSION_IDLE_TIMEOUT", default_value_t = HumanDuration(limits().session_idle_timeout), help_heading = "Sessions")]
    pub session_idle_timeout: HumanDuration,

    /// A session that never opened a GET stream and made a single request (a host that
    /// opens a session per call) ends this long after it, with no reconnect grace: it
    /// holds neither a queue place nor an identity.
    #[arg(long, env = "MCP_CHAT_SINGLE_CALL_TIMEOUT", default_value_t = HumanDuration(limits().single_call_timeout), help_heading = "Sessions")]
    pub single_call_timeout: HumanDuration,

    /// An identity used through the session-less MCP revision (2026-07-28, by `handle`)
    /// is online while it holds a listen stream or a waiting call, and for this long after
    /// its last request; then it counts as lost (its reconnect grace starts).
    #[arg(long, env = "MCP_CHAT_LEASE", default_value_t = HumanDuration(limits().lease), help_heading = "Sessions")]
    pub lease: HumanDuration,

    /// Ping clients that hold a GET stream open this often, so a stream to a vanished
    /// client fails and the session is noticed as lost.
    #[arg(long, env = "MCP_CHAT_KEEPALIVE_PING", default_value_t = HumanDuration(defaults().keepalive_ping), help_heading = "Sessions")]
    pub keepalive_ping: HumanDuration,

    /// How long a session that had a GET stream may hold none and send no request before
    /// its connection counts as lost (its partner is told `partner.reconnecting` and the
    /// reconnect grace starts). Any request or a new stream within it changes nothing.
    #[arg(long, env = "MCP_CHAT_STREAM_GRACE", default_value_t = HumanDuration(limits().stream_grace), help_heading = "Sessions")]
    pub stream_grace: HumanDuration,

    /// Messages handed to a GET stream this recently before it broke are sent again on
    /// the client's next stream (duplicates carry the same seq).
    #[arg(long, env = "MCP_CHAT_REDELIVER_WINDOW", default_value_t = HumanDuration(defaults().redeliver_window), help_heading = "Sessions")]
    pub redeliver_window: HumanDuration,

    /// Recent messages each session keeps for a GET stream that reconnects with
    /// Last-Event-ID (0 turns replay off).
    #[arg(long, env = "MCP_CHAT_STREAM_REPLAY", default_value_t = defaults().stream_replay, help_heading = "Sessions")]
    pub stream_replay: usize,

    /// SSE keep-alive comment interval.
    #[arg(long, env = "MCP_CHAT_SSE_KEEP_ALIVE", default_value_t = HumanDuration(defaults().sse_keep_alive), help_heading = "Sessions")]
    pub sse_keep_alive: HumanDuration,

    /// Reconnection delay an SSE stream's priming event gives clients (`retry:`): how long
    /// a client waits before reopening a stream that broke.
    #[arg(long, env = "MCP_CHAT_SSE_RETRY", default_value_t = HumanDuration(defaults().sse_retry), help_heading = "Sessions")]
    pub sse_retry: HumanDuration,

    /// Most MCP sessions open at once.
    #[arg(long, env = "MCP_CHAT_MAX_SESSIONS", default_value_t = defaults().max_sessions, help_heading = "Sessions")]
    pub max_sessions: usize,

    /// Largest accepted request body in bytes; a larger Content-Length gets 413 before the
    /// body is read.
    #[arg(long, env = "MCP_CHAT_MAX_REQUEST_BYTES", default_value_t = defaults().max_request_bytes, help_heading = "Sessions")]
    pub max_request_bytes: usize,

    /// Most live sessions one client address (IPv6: one /64) may hold; initialize beyond it
    /// gets 503. 0 = no limit. Behind a reverse proxy every client has the proxy's address:
    /// raise it or set 0 there.
    #[arg(long, env = "MCP_CHAT_MAX_SESSIONS_PER_ADDRESS", default_value_t = defaults().max_sessions_per_address, help_heading = "Security")]
    pub max_sessions_per_address: usize,

    /// A new connection must send its first request's headers within this, or it is closed.
    #[arg(long, env = "MCP_CHAT_HEADER_TIMEOUT", default_value_t = HumanDuration(defaults().header_timeout), help_heading = "Security")]
    pub header_timeout: HumanDuration,

    /// A request body must arrive in full within this (408 and the connection closed
    /// otherwise).
    #[arg(long, env = "MCP_CHAT_BODY_TIMEOUT", default_value_t = HumanDuration(defaults().body_timeout), help_heading = "Security")]
    pub body_timeout: HumanDuration,

    /// A kept-alive connection must send its next request's headers within this of the
    /// previous response, or it is closed. Open GET streams and blocking calls are not cut.
    #[arg(long, env = "MCP_CHAT_IDLE_CONNECTION_TIMEOUT", default_value_t = HumanDuration(defaults().idle_connection_timeout), help_heading = "Security")]
    pub idle_connection_timeout: HumanDuration,

    /// Most TCP connections open at once; one beyond it gets 503 and is closed at once.
    /// Also bounded by the process's open-file limit (raised to its hard limit at start).
    #[arg(long, env = "MCP_CHAT_MAX_CONNECTIONS", default_value_t = defaults().max_connections, help_heading = "Security")]
    pub max_connections: usize,

    /// A client that has answered a keep-alive ping before and leaves one unanswered this
    /// long has its GET stream ended like a dropped one (a hung or stopped client). Clients
    /// that never answer pings are not judged by this.
    #[arg(long, env = "MCP_CHAT_PING_TIMEOUT", default_value_t = HumanDuration(defaults().ping_timeout), help_heading = "Sessions")]
    pub ping_timeout: HumanDuration,

    /// Wrong resume tokens one client address may present per --bad-token-window; beyond
    /// it, calls with a resume token fail with too_many_bad_tokens until the budget refills.
    #[arg(long, env = "MCP_CHAT_MAX_BAD_TOKENS", default_value_t = defaults().max_bad_tokens, help_heading = "Security")]
    pub max_bad_tokens: u32,

    /// Window of --max-bad-tokens (the budget refills at that many per window).
    #[arg(long, env = "MCP_CHAT_BAD_TOKEN_WINDOW", default_value_t = HumanDuration(defaults().bad_token_window), help_heading = "Security")]
    pub bad_token_window: HumanDuration,

    /// How long a lost participant keeps its room before the partner is told `timeout`.
    #[arg(long, env = "MCP_CHAT_RECONNECT_GRACE", default_value_t = HumanDuration(limits().reconnect_grace), help_heading = "Chat")]
    pub reconnect_grace: HumanDuration,

    /// How long an unread direct message waits before it expires (the sender is told).
    #[arg(long, env = "MCP_CHAT_MESSAGE_TTL", default_value_t = HumanDuration(limits().message_ttl), help_heading = "Chat")]
    pub message_ttl: HumanDuration,

    /// How long a queued participant with interests waits for a shared one before
    /// accepting anyone.
    #[arg(long, env = "MCP_CHAT_INTEREST_TIMEOUT", default_value_t = HumanDuration(limits().interest_timeout), help_heading = "Chat")]
    pub interest_timeout: HumanDuration,

    /// How long two participants who just parted are kept from being paired again.
    #[arg(long, env = "MCP_CHAT_REMATCH_COOLDOWN", default_value_t = HumanDuration(limits().rematch_cooldown), help_heading = "Chat")]
    pub rematch_cooldown: HumanDuration,

    /// A typing indicator clears itself after this long without a refresh.
    #[arg(long, env = "MCP_CHAT_TYPING_TIMEOUT", default_value_t = HumanDuration(limits().typing_timeout), help_heading = "Chat")]
    pub typing_timeout: HumanDuration,

    /// How long an ended room's history stays readable by its participants.
    #[arg(long, env = "MCP_CHAT_HISTORY_RETENTION", default_value_t = HumanDuration(limits().history_retention), help_heading = "Chat")]
    pub history_retention: HumanDuration,

    /// An offline participant with no unread messages is forgotten after this long.
    #[arg(long, env = "MCP_CHAT_OFFLINE_RETENTION", default_value_t = HumanDuration(limits().offline_retention), help_heading = "Chat")]
    pub offline_retention: HumanDuration,

    /// Window of recent matches used for the queue's wait estimate.
    #[arg(long, env = "MCP_CHAT_MATCH_RATE_WINDOW", default_value_t = HumanDuration(limits().match_rate_window), help_heading = "Chat")]
    pub match_rate_window: HumanDuration,

    /// `client_message_id`s remembered per sender, so a retried send returns its first
    /// result instead of sending twice.
    #[arg(long, env = "MCP_CHAT_IDEMPOTENCY_KEYS", default_value_t = limits().idempotency_keys, help_heading = "Chat")]
    pub idempotency_keys: usize,

    /// A file of client ids an operator registers, one per line: `CLIENT_ID SECRET [NAME]`
    /// (`#` starts a comment). They exist from the start, so mail to them is held, and
    /// checking in as one needs its secret (as `resume_token`).
    #[arg(long, env = "MCP_CHAT_CLIENTS_FILE", help_heading = "Chat")]
    pub clients_file: Option<std::path::PathBuf>,

    /// Messages a participant may send per --rate-window.
    #[arg(long, env = "MCP_CHAT_RATE_MESSAGES", default_value_t = limits().rate_messages, help_heading = "Limits")]
    pub rate_messages: u32,

    /// Window of the message rate limit.
    #[arg(long, env = "MCP_CHAT_RATE_WINDOW", default_value_t = HumanDuration(limits().rate_window), help_heading = "Limits")]
    pub rate_window: HumanDuration,

    /// Largest message in bytes (UTF-8).
    #[arg(long, env = "MCP_CHAT_MAX_MESSAGE_BYTES", default_value_t = limits().max_message_bytes, help_heading = "Limits")]
    pub max_message_bytes: usize,

    /// Longest display name or client name, in characters.
    #[arg(long, env = "MCP_CHAT_MAX_DISPLAY_NAME_CHARS", default_value_t = limits().max_display_name_chars, help_heading = "Limits")]
    pub max_display_name_chars: usize,

    /// Longest user id / client id, in characters.
    #[arg(long, env = "MCP_CHAT_MAX_ID_CHARS", default_value_t = limits().max_id_chars, help_heading = "Limits")]
    pub max_id_chars: usize,

    /// Most interests per participant.
    #[arg(long, env = "MCP_CHAT_MAX_INTERESTS", default_value_t = limits().max_interests, help_heading = "Limits")]
    pub max_interests: usize,

    /// Longest interest, in characters.
    #[arg(long, env = "MCP_CHAT_MAX_INTEREST_CHARS", default_value_t = limits().max_interest_chars, help_heading = "Limits")]
    pub max_interest_chars: usize,

    /// Most capabilities a client may declare at check-in.
    #[arg(long, env = "MCP_CHAT_MAX_CAPABILITIES", default_value_t = limits().max_capabilities, help_heading = "Limits")]
    pub max_capabilities: usize,

    /// Longest capability, in characters.
    #[arg(long, env = "MCP_CHAT_MAX_CAPABILITY_CHARS", default_value_t = limits().max_capability_chars, help_heading = "Limits")]
    pub max_capability_chars: usize,

    /// Longest block/report reason, in characters.
    #[arg(long, env = "MCP_CHAT_MAX_REASON_CHARS", default_value_t = limits().max_reason_chars, help_heading = "Limits")]
    pub max_reason_chars: usize,

    /// Unread direct messages a mailbox holds before senders get an error.
    #[arg(long, env = "MCP_CHAT_MAILBOX_CAPACITY", default_value_t = limits().mailbox_capacity, help_heading = "Limits")]
    pub mailbox_capacity: usize,

    /// Unacknowledged events kept per participant (oldest dropped beyond it). Also how far
    /// a session's GET stream may fall behind before pushes to it are skipped.
    #[arg(long, env = "MCP_CHAT_EVENT_BUFFER", default_value_t = limits().event_buffer, help_heading = "Limits")]
    pub event_buffer: usize,

    /// Approximate bytes of unacknowledged events kept per participant with a session;
    /// beyond it the oldest are evicted (and counted in `evicted`).
    #[arg(long, env = "MCP_CHAT_INBOX_BYTES", default_value_t = limits().inbox_bytes, help_heading = "Limits")]
    pub inbox_bytes: usize,

    /// The same for an offline participant: its store shrinks to this when it goes offline.
    #[arg(long, env = "MCP_CHAT_OFFLINE_INBOX_BYTES", default_value_t = limits().offline_inbox_bytes, help_heading = "Limits")]
    pub offline_inbox_bytes: usize,

    /// Approximate bytes of unread direct messages a mailbox holds; beyond it the sender
    /// gets `mailbox_full` (direct messages are never evicted).
    #[arg(long, env = "MCP_CHAT_MAILBOX_BYTES", default_value_t = limits().mailbox_bytes, help_heading = "Limits")]
    pub mailbox_bytes: usize,

    /// Approximate bytes of messages kept per room for `get_history`.
    #[arg(long, env = "MCP_CHAT_HISTORY_BYTES", default_value_t = limits().history_bytes, help_heading = "Limits")]
    pub history_bytes: usize,

    /// The same for a room that has ended: its history shrinks to this.
    #[arg(long, env = "MCP_CHAT_ENDED_HISTORY_BYTES", default_value_t = limits().ended_history_bytes, help_heading = "Limits")]
    pub ended_history_bytes: usize,

    /// Participants waiting in the queue at once.
    #[arg(long, env = "MCP_CHAT_QUEUE_CAPACITY", default_value_t = limits().queue_capacity, help_heading = "Limits")]
    pub queue_capacity: usize,

    /// Participants known at once (online or offline).
    #[arg(long, env = "MCP_CHAT_MAX_PARTICIPANTS", default_value_t = limits().max_participants, help_heading = "Limits")]
    pub max_participants: usize,

    /// Messages kept per room for get_history.
    #[arg(long, env = "MCP_CHAT_HISTORY_PER_ROOM", default_value_t = limits().history_per_room, help_heading = "Limits")]
    pub history_per_room: usize,

    /// Most events or messages returned by one fetch.
    #[arg(long, env = "MCP_CHAT_MAX_FETCH", default_value_t = limits().max_fetch, help_heading = "Limits")]
    pub max_fetch: usize,

    /// Most clients listed by list_clients.
    #[arg(long, env = "MCP_CHAT_MAX_LISTED_CLIENTS", default_value_t = limits().max_listed_clients, help_heading = "Limits")]
    pub max_listed_clients: usize,

    /// Abuse reports kept (oldest dropped first).
    #[arg(long, env = "MCP_CHAT_MAX_REPORTS", default_value_t = limits().max_reports, help_heading = "Limits")]
    pub max_reports: usize,

    /// wait_for_events timeout when the caller gives none.
    #[arg(long, env = "MCP_CHAT_WAIT_DEFAULT", default_value_t = HumanDuration(defaults().wait_default), help_heading = "Waiting tools")]
    pub wait_default: HumanDuration,

    /// Largest wait_for_events timeout (keep it below clients' ~60 s request timeout).
    #[arg(long, env = "MCP_CHAT_WAIT_MAX", default_value_t = HumanDuration(defaults().wait_max), help_heading = "Waiting tools")]
    pub wait_max: HumanDuration,

    /// send_message_and_wait timeout when the caller gives none.
    #[arg(long, env = "MCP_CHAT_SEND_WAIT_DEFAULT", default_value_t = HumanDuration(defaults().send_wait_default), help_heading = "Waiting tools")]
    pub send_wait_default: HumanDuration,

    /// Largest send_message_and_wait timeout.
    #[arg(long, env = "MCP_CHAT_SEND_WAIT_MAX", default_value_t = HumanDuration(defaults().send_wait_max), help_heading = "Waiting tools")]
    pub send_wait_max: HumanDuration,

    /// How long a send_message_and_wait task is kept (a waiting one fails after it; a
    /// finished one stays readable as long again). Must exceed --send-wait-max.
    #[arg(long, env = "MCP_CHAT_TASK_TTL", default_value_t = HumanDuration(defaults().task_ttl), help_heading = "Waiting tools")]
    pub task_ttl: HumanDuration,

    /// Suggested tasks/get polling interval of a task.
    #[arg(long, env = "MCP_CHAT_TASK_POLL_INTERVAL", default_value_t = HumanDuration(defaults().task_poll_interval), help_heading = "Waiting tools")]
    pub task_poll_interval: HumanDuration,

    /// Most tasks running at once on this node; beyond it send_message_and_wait blocks.
    #[arg(long, env = "MCP_CHAT_MAX_TASKS", default_value_t = defaults().max_tasks, help_heading = "Waiting tools")]
    pub max_tasks: usize,

    /// Interval of progress notifications while a tool waits (needs a progress token).
    #[arg(long, env = "MCP_CHAT_PROGRESS_INTERVAL", default_value_t = HumanDuration(defaults().progress_interval), help_heading = "Waiting tools")]
    pub progress_interval: HumanDuration,

    /// How long shutdown waits for queued notifications to flush.
    #[arg(long, env = "MCP_CHAT_SHUTDOWN_FLUSH", default_value_t = HumanDuration(defaults().shutdown_flush), help_heading = "Sessions")]
    pub shutdown_flush: HumanDuration,

    /// Where the chat is kept. `memory`: nothing outlives the process. `sqlite:PATH`
    /// (e.g. sqlite:./mcp-chat.db): every request is logged to that file before it is
    /// answered, and a restart (even after kill -9) resumes every session, room and
    /// mailbox; the file is created (mode 0600) if missing. `redis://HOST:PORT[/DB]`:
    /// the log is a Redis Stream shared by every node started with the same URL (and
    /// --redis-prefix); each node serves any session, and one node's death loses nothing.
    #[arg(long, env = "MCP_CHAT_STORE", default_value = "memory", help_heading = "Storage")]
    pub store: crate::store::StoreUrl,

    /// How a durable store flushes commits: `full` (to the disk at every commit: an
    /// answered request survives a power loss), `normal` (at checkpoints: survives a crash
    /// of the server, the last commits may be lost on power loss), `off` (never).
    #[arg(long, env = "MCP_CHAT_STORE_SYNC", value_enum, default_value_t = crate::store::Sync::Full, help_heading = "Storage")]
    pub store_sync: crate::store::Sync,

    /// Take a snapshot after this many logged inputs (start-up replays at most about
    /// this many after the newest snapshot).
    #[arg(long, env = "MCP_CHAT_SNAPSHOT_EVERY", default_value_t = defaults().snapshot_every, help_heading = "Storage")]
    pub snapshot_every: u64,

    /// Also take a snapshot when this much time has passed since the last one (if
    /// anything was logged meanwhile). A snapshot is always taken at shutdown.
    #[arg(long, env = "MCP_CHAT_SNAPSHOT_INTERVAL", default_value_t = HumanDuration(defaults().snapshot_interval), help_heading = "Storage")]
    pub snapshot_interval: HumanDuration,

    /// Most inputs written in one commit (inputs that arrive while a commit runs go
    /// into the next one together).
    #[arg(long, env = "MCP_CHAT_JOURNAL_BATCH", default_value_t = defaults().journal_batch, help_heading = "Storage")]
    pub journal_batch: usize,

    /// With `--store redis://`: the prefix of every key this chat uses, so several
    /// chats can share one Redis (nodes of one chat use the same prefix).
    #[arg(long, env = "MCP_CHAT_REDIS_PREFIX", default_value_t = defaults().redis_prefix, help_heading = "Storage")]
    pub redis_prefix: String,

    /// With `--store redis://`: how often this node tells the others it is alive.
    #[arg(long, env = "MCP_CHAT_NODE_HEARTBEAT", default_value_t = HumanDuration(defaults().node_heartbeat), help_heading = "Storage")]
    pub node_heartbeat: HumanDuration,

    /// With `--store redis://`: a node not heard from for this long is given up, and
    /// the streams it held count as dropped (their clients have the stream grace, then
    /// the reconnect grace, to come back through another node). Same on every node.
    #[arg(long, env = "MCP_CHAT_NODE_TIMEOUT", default_value_t = HumanDuration(limits().node_timeout), help_heading = "Storage")]
    pub node_timeout: HumanDuration,

    /// With `--store redis://`: how long a request waits for Redis (to append its input
    /// and see it applied) before it is answered with an error.
    #[arg(long, env = "MCP_CHAT_REDIS_TIMEOUT", default_value_t = HumanDuration(defaults().redis_timeout), help_heading = "Storage")]
    pub redis_timeout: HumanDuration,
}

impl Cli {
    /// Resolves the listen address (the host may be a name such as `localhost`).
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve --host '{}': {e}", self.host))?
            .next()
            .ok_or_else(|| format!("--host '{}' resolves to no address", self.host))
    }

    /// Builds the server configuration, checking values that clap cannot.
    pub fn into_config(self) -> Result<ServerConfig, String> {
        let listen = self.listen_addr()?;
        let defaults = ServerConfig::default();
        let allowed_hosts = match self.allowed_hosts.as_slice() {
            [] => defaults.allowed_hosts,
            list if list.iter().any(|h| h.trim() == "*") => Vec::new(),
            list => clean_list(list),
        };
        let allowed_origins = match self.allowed_origins.as_slice() {
            [] => defaults.allowed_origins,
            list if list.iter().any(|o| o.trim() == "*") => Vec::new(),
            list => clean_list(list),
        };
        let auth_token = self.auth_token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if self.wait_max.0.is_zero() || self.send_wait_max.0.is_zero() {
            return Err("--wait-max and --send-wait-max must be greater than zero".into());
        }
        if self.task_ttl.0 <= self.send_wait_max.0 {
            return Err("--task-ttl must be longer than --send-wait-max".into());
        }
        if self.task_poll_interval.0 < Duration::from_millis(10) {
            return Err("--task-poll-interval must be at least 10ms".into());
        }
        if self.progress_interval.0 < Duration::from_millis(100) {
            return Err("--progress-interval must be at least 100ms".into());
        }
        if self.keepalive_ping.0 < Duration::from_millis(100) {
            return Err("--keepalive-ping must be at least 100ms".into());
        }
        let positive = [
            ("--header-timeout", self.header_timeout.0),
            ("--body-timeout", self.body_timeout.0),
            ("--idle-connection-timeout", self.idle_connection_timeout.0),
            ("--ping-timeout", self.ping_timeout.0),
            ("--bad-token-window", self.bad_token_window.0),
            ("--node-heartbeat", self.node_heartbeat.0),
            ("--node-timeout", self.node_timeout.0),
            ("--redis-timeout", self.redis_timeout.0),
        ];
        if self.node_timeout.0 <= self.node_heartbeat.0 * 2 {
            return Err(
                "--node-timeout must be more than twice --node-heartbeat, or a busy node is given up".into(),
            );
        }
        if let Some((flag, _)) = positive.iter().find(|(_, d)| *d < Duration::from_millis(10)) {
            return Err(format!("{flag} must be at least 10ms"));
        }
        if self.max_bad_tokens == 0 {
            return Err("--max-bad-tokens must be at least 1".into());
        }
        let limits = Limits {
            max_message_bytes: self.max_message_bytes,
            max_display_name_chars: self.max_display_name_chars,
            max_id_chars: self.max_id_chars,
            max_interests: self.max_interests,
            max_interest_chars: self.max_interest_chars,
            max_capabilities: self.max_capabilities,
            max_capability_chars: self.max_capability_chars,
            max_reason_chars: self.max_reason_chars,
            mailbox_capacity: self.mailbox_capacity,
            event_buffer: self.event_buffer,
            inbox_bytes: self.inbox_bytes,
            offline_inbox_bytes: self.offline_inbox_bytes,
            mailbox_bytes: self.mailbox_bytes,
            history_bytes: self.history_bytes,
            ended_history_bytes: self.ended_history_bytes,
            queue_capacity: self.queue_capacity,
            max_participants: self.max_participants,
            rate_messages: self.rate_messages,
            rate_window: self.rate_window.0,
            history_per_room: self.history_per_room,
            max_fetch: self.max_fetch,
            max_listed_clients: self.max_listed_clients,
            max_reports: self.max_reports,
            reconnect_grace: self.reconnect_grace.0,
            stream_grace: self.stream_grace.0,
            session_idle_timeout: self.session_idle_timeout.0,
            single_call_timeout: self.single_call_timeout.0,
            lease: self.lease.0,
            message_ttl: self.message_ttl.0,
            interest_timeout: self.interest_timeout.0,
            rematch_cooldown: self.rematch_cooldown.0,
            typing_timeout: self.typing_timeout.0,
            history_retention: self.history_retention.0,
            offline_retention: self.offline_retention.0,
            match_rate_window: self.match_rate_window.0,
            idempotency_keys: self.idempotency_keys,
            node_timeout: self.node_timeout.0,
        };
        let registered = match &self.clients_file {
            Some(path) => read_clients_file(path, &limits)?,
            None => Vec::new(),
        };
        Ok(ServerConfig {
            listen,
            listen_backlog: self.listen_backlog,
            registered,
            auth_token,
            allowed_hosts,
            allowed_origins,
            limits,
            keepalive_ping: self.keepalive_ping.0,
            redeliver_window: self.redeliver_window.0,
            stream_replay: self.stream_replay,
            sse_keep_alive: self.sse_keep_alive.0,
            sse_retry: self.sse_retry.0,
            wait_default: self.wait_default.0.min(self.wait_max.0),
            wait_max: self.wait_max.0,
            send_wait_default: self.send_wait_default.0.min(self.send_wait_max.0),
            send_wait_max: self.send_wait_max.0,
            task_ttl: self.task_ttl.0,
            task_poll_interval: self.task_poll_interval.0,
            max_tasks: self.max_tasks,
            progress_interval: self.progress_interval.0,
            max_request_bytes: self.max_request_bytes.max(1024),
            max_sessions: self.max_sessions.max(1),
            max_sessions_per_address: self.max_sessions_per_address,
            header_timeout: self.header_timeout.0,
            body_timeout: self.body_timeout.0,
            idle_connection_timeout: self.idle_connection_timeout.0,
            max_connections: self.max_connections.max(1),
            ping_timeout: self.ping_timeout.0,
            max_bad_tokens: self.max_bad_tokens,
            bad_token_window: self.bad_token_window.0,
            shutdown_flush: self.shutdown_flush.0,
            store: self.store.clone(),
            store_sync: self.store_sync,
            snapshot_every: self.snapshot_every.max(1),
            snapshot_interval: self.snapshot_interval.0,
            journal_batch: self.journal_batch.max(1),
            redis_prefix: self.redis_prefix.clone(),
            node_heartbeat: self.node_heartbeat.0,
            redis_timeout: self.redis_timeout.0,
        })
    }
}

fn clean_list(list: &[String]) -> Vec<String> {
    list.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// Shortest secret accepted in `--clients-file`: a guessable secret would make the
/// registration pointless.
pub const MIN_CLIENT_SECRET_CHARS: usize = 16;

/// Reads `--clients-file`: `CLIENT_ID SECRET [NAME...]` per line, `#` comments. Any bad
/// line is a start-up error naming the file and the line.
fn read_clients_file(path: &std::path::Path, limits: &Limits) -> Result<Vec<chat_core::Registered>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --clients-file {}: {e}", path.display()))?;
    let mut clients: Vec<chat_core::Registered> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("--clients-file {} line {}", path.display(), n + 1);
        let mut words = line.split_whitespace();
        let (Some(id), Some(secret)) = (words.next(), words.next()) else {
            return Err(format!("{}: expected `CLIENT_ID SECRET [NAME]`", at()));
        };
        let id_ok = |c: char| c.is_ascii_alphanumeric() || "-_.@:".contains(c);
        if id.chars().count() > limits.max_id_chars || !id.chars().all(id_ok) {
            return Err(format!("{}: `{id}` is not a valid client id", at()));
        }
        if secret.chars().count() < MIN_CLIENT_SECRET_CHARS {
            return Err(format!(
                "{}: the secret must be at least {MIN_CLIENT_SECRET_CHARS} characters",
                at()
            ));
        }
        if clients.iter().any(|c| c.client_id == id) {
            return Err(format!("{}: `{id}` is registered twice", at()));
        }
        let name: Vec<&str> = words.collect();
        clients.push(chat_core::Registered {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
            name: (!name.is_empty()).then(|| name.join(" ")),
        });
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_clients_file_and_names_the_bad_line() {
        let dir = std::env::temp_dir().join(format!("mcp-chat-clients-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good");
        std::fs::write(
            &good,
            "# team\nbackend 0123456789abcdef0123 Backend IDE\n\nfrontend fedcba9876543210fedc\n",
        )
        .expect("write");
        let clients = read_clients_file(&good, &Limits::default()).expect("valid file");
        assert_eq!(clients.len(), 2);
        assert_eq!(
            (clients[0].client_id.as_str(), clients[0].name.as_deref()),
            ("backend", Some("Backend IDE"))
        );
        assert_eq!(clients[1].name, None);
        for (text, problem) in [
            ("backend\n", "expected `CLIENT_ID SECRET"),
            ("back!end 0123456789abcdef0123\n", "not a valid client id"),
            ("backend short\n", "at least 16"),
            ("a 0123456789abcdef0123\na 0123456789abcdef0123\n", "registered twice"),
        ] {
            let bad = dir.join("bad");
            std::fs::write(&bad, text).expect("write");
            let error = read_clients_file(&bad, &Limits::default()).expect_err(text);
            assert!(error.contains(problem) && error.contains("line"), "{error}");
        }
        assert!(read_clients_file(&dir.join("missing"), &Limits::default()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_durations() {
        let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d("30"), Ok(Duration::from_secs(30)));
        assert_eq!(d("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(d("2h"), Ok(Duration::from_secs(7200)));
        assert!(d("").is_err() && d("5x").is_err() && d("-1s").is_err() && d("1e400").is_err());
        assert_eq!(HumanDuration(Duration::from_secs(300)).to_string(), "5m");
        assert_eq!(HumanDuration(Duration::from_millis(1500)).to_string(), "1500ms");
        assert_eq!(HumanDuration(Duration::ZERO).to_string(), "0s");
    }

    #[test]
    fn builds_config_with_defaults_and_overrides() {
        let cli = Cli::try_parse_from(["chat-mcp-http", "--port", "0", "--reconnect-grace", "2s"])
            .expect("valid flags");
        let config = cli.into_config().expect("valid config");
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.limits.reconnect_grace, Duration::from_secs(2));
        assert_eq!(config.allowed_hosts.len(), 3);
        assert_eq!(config.sse_retry, Duration::from_secs(1));
        let cli = Cli::try_parse_from([
            "chat-mcp-http",
            "--allowed-host",
            "*",
            "--auth-token",
            " ",
            "--sse-retry",
            "1500ms",
        ])
        .expect("valid flags");
        let config = cli.into_config().expect("valid config");
        assert!(config.allowed_hosts.is_empty());
        assert_eq!(config.sse_retry, Duration::from_millis(1500));
        assert!(config.auth_token.is_none());
        assert_eq!(
            (config.header_timeout, config.max_sessions_per_address, config.max_bad_tokens),
            (Duration::from_secs(10), 64, 10)
        );
        let cli = Cli::try_parse_from(["chat-mcp-http", "--header-timeout", "0s"]).expect("valid flags");
        assert!(cli.into_config().is_err_and(|e| e.contains("--header-timeout")));
    }
}
