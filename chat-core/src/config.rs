//! Every limit the core enforces, with documented defaults.
//!
//! Adapters expose each field as a command-line flag; nothing is hard-coded elsewhere.

use std::time::Duration;

/// What a [`crate::Chat`] is built from: the seed for its randomness and its limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Seed of the ChaCha20 generator behind every id and resume token.
    /// Same seed + same inputs => byte-identical outputs. Adapters draw it from the OS.
    pub seed: [u8; 32],
    /// Sizes, rates and durations.
    pub limits: Limits,
    /// Client ids an operator registered, each with the secret that claims it. They exist
    /// from the start (offline), so mail to them is held, and checking in as one needs
    /// its secret (`Checkin { resume_token }` or `Resume`).
    pub registered: Vec<Registered>,
}

/// A client id registered by the operator (see [`Config::registered`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    /// The client id.
    pub client_id: String,
    /// The secret that proves ownership; it serves as the identity's resume token.
    pub secret: String,
    /// A display name, if not the id.
    pub name: Option<String>,
}

/// Sizes, capacities, rates and durations. See each field for its default.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Largest message body in bytes (UTF-8). Default 16 KiB.
    pub max_message_bytes: usize,
    /// Longest display name or client name, in characters. Default 64.
    pub max_display_name_chars: usize,
    /// Longest user id / client id, in characters. Default 64.
    pub max_id_chars: usize,
    /// Most interests one participant may list. Default 10.
    pub max_interests: usize,
    /// Longest interest, in characters. Default 32.
    pub max_interest_chars: usize,
    /// Most capabilities a client may declare at check-in. Default 32.
    pub max_capabilities: usize,
    /// Longest capability, in characters. Default 64.
    pub max_capability_chars: usize,
    /// Longest block/report reason, in characters. Default 500.
    pub max_reason_chars: usize,
    /// Unread direct messages a mailbox holds; a sender to a full mailbox gets an error. Default 1,000.
    pub mailbox_capacity: usize,
    /// Unacknowledged non-direct events kept per participant; beyond it the oldest is
    /// dropped and counted in the next `Events` reply (`evicted`). Default 1,000.
    pub event_buffer: usize,
    /// Approximate bytes of unacknowledged non-direct events kept per participant with a
    /// session (online or reconnecting); beyond it the oldest are evicted as above.
    /// Default 4 MiB.
    pub inbox_bytes: usize,
    /// The same for an offline participant: its store shrinks to this when it goes
    /// offline, so abandoned participants hold little. Default 32 KiB.
    pub offline_inbox_bytes: usize,
    /// Approximate bytes of unread direct messages a mailbox holds; a sender to a full
    /// mailbox gets `mailbox_full` (direct messages are never evicted). Default 4 MiB.
    pub mailbox_bytes: usize,
    /// Approximate bytes of messages kept per room for `History`; the oldest go first.
    /// Default 512 KiB.
    pub history_bytes: usize,
    /// The same for a room that has ended (kept for `history_retention`): its history
    /// shrinks to this when it ends. Default 32 KiB.
    pub ended_history_bytes: usize,
    /// Participants waiting in the roulette queue at once. Default 10,000.
    pub queue_capacity: usize,
    /// Participants known at once (online or offline). Default 1,000,000.
    pub max_participants: usize,
    /// Messages (room or direct) a participant may send per `rate_window`. Default 20.
    pub rate_messages: u32,
    /// The window of the rate limit (a token bucket refilling over it). Default 10 s.
    pub rate_window: Duration,
    /// Messages kept per room for `History`. Default 200.
    pub history_per_room: usize,
    /// Most events or messages returned by one fetch. Default 100.
    pub max_fetch: usize,
    /// Most clients listed by `ListClients`. Default 500.
    pub max_listed_clients: usize,
    /// Reports kept for moderators (oldest dropped first). Default 10,000.
    pub max_reports: usize,
    /// How long a participant whose connection was lost keeps its room before the
    /// partner is told `timeout`; any sign of life from its session, or `Resume` from
    /// another one, within it keeps everything. Default 30 s.
    pub reconnect_grace: Duration,
    /// How long a session that has held a stream may hold nothing (its stream dropped,
    /// no request) before its connection counts as lost. Default 3 s.
    pub stream_grace: Duration,
    /// How long a session that never held a stream but made several requests (a
    /// tools-only client) may be silent before its connection counts as lost.
    /// Default 300 s.
    pub session_idle_timeout: Duration,
    /// How long a session that never held a stream and made a single request (a host
    /// that opens a session per call) may be silent before it ends, without reconnect
    /// grace: its room ends and its identity goes offline. Default 10 s.
    pub single_call_timeout: Duration,
    /// How long an unread direct message waits before it expires and the sender is told.
    /// Default 300 s.
    pub message_ttl: Duration,
    /// How long a queued participant with interests waits for someone sharing one
    /// before accepting anyone. Default 10 s.
    pub interest_timeout: Duration,
    /// How long two participants who just parted are kept from being paired again.
    /// Default 60 s.
    pub rematch_cooldown: Duration,
    /// A typing indicator (in a room or to a client) clears itself, and the other side is
    /// told, after this long without a refresh. Repeated `typing: true` calls only refresh
    /// it, never re-notify. Default 5 s.
    pub typing_timeout: Duration,
    /// How long an ended room's history stays readable by its two participants. Default 10 min.
    pub history_retention: Duration,
    /// An offline participant with no unread messages is forgotten after this long. Default 24 h.
    pub offline_retention: Duration,
    /// Matches remembered for the queue's wait estimate, over at most this window. Default 5 min.
    pub match_rate_window: Duration,
    /// `client_message_id`s remembered per sender, so a retried send returns its first
    /// result; older keys are forgotten first. Default 256.
    pub idempotency_keys: usize,
    /// When several nodes serve one chat: a node whose heartbeats stop for this long is
    /// given up, and the streams and requests it held count as ended. Default 10 s.
    #[serde(default = "default_node_timeout")]
    pub node_timeout: Duration,
    /// A leased session (one without protocol sessions, opened by a binding call in the
    /// MCP 2026-07-28 revision: see [`crate::Input::Open`]) is live while it holds
    /// something (a listen stream, a waiting call) and for this long after its last
    /// request; then it counts as lost (the reconnect grace starts). Default 60 s.
    #[serde(default = "default_lease")]
    pub lease: Duration,
}

fn default_node_timeout() -> Duration {
    Limits::default().node_timeout
}

fn default_lease() -> Duration {
    Limits::default().lease
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 * 1024,
            max_display_name_chars: 64,
            max_id_chars: 64,
            max_interests: 10,
            max_interest_chars: 32,
            max_capabilities: 32,
            max_capability_chars: 64,
            max_reason_chars: 500,
            mailbox_capacity: 1_000,
            event_buffer: 1_000,
            inbox_bytes: 4 * 1024 * 1024,
            offline_inbox_bytes: 32 * 1024,
            mailbox_bytes: 4 * 1024 * 1024,
            history_bytes: 512 * 1024,
            ended_history_bytes: 32 * 1024,
            queue_capacity: 10_000,
            max_participants: 1_000_000,
            rate_messages: 20,
            rate_window: Duration::from_secs(10),
            history_per_room: 200,
            max_fetch: 100,
            max_listed_clients: 500,
            max_reports: 10_000,
            reconnect_grace: Duration::from_secs(30),
            stream_grace: Duration::from_secs(3),
            session_idle_timeout: Duration::from_secs(300),
            single_call_timeout: Duration::from_secs(10),
            message_ttl: Duration::from_secs(300),
            interest_timeout: Duration::from_secs(10),
            rematch_cooldown: Duration::from_secs(60),
            typing_timeout: Duration::from_secs(5),
            history_retention: Duration::from_secs(600),
            offline_retention: Duration::from_secs(24 * 3600),
            match_rate_window: Duration::from_secs(300),
            idempotency_keys: 256,
            node_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}
