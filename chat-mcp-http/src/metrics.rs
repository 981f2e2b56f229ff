//! Counters and the tool-latency histogram, rendered as Prometheus text.
//!
//! Hand-written rather than a metrics crate: a dozen atomics and one small map are all
//! the server needs, and the exposition format is simple and stable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the tool latency buckets. Waiting tools land in the top ones.
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
struct ToolStats {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    count: u64,
    sum_secs: f64,
    errors: u64,
}

/// Process-wide counters. Gauges that the core knows (queue, rooms) are passed to
/// [`Metrics::render`] instead of being duplicated here.
#[derive(Default)]
pub struct Metrics {
    sessions_opened: AtomicU64,
    sessions_closed: AtomicU64,
    sessions_lost: AtomicU64,
    sessions_refused: AtomicU64,
    get_streams: AtomicI64,
    connections: AtomicI64,
    messages_relayed: AtomicU64,
    events_pushed: AtomicU64,
    push_failures: AtomicU64,
    resource_updates: AtomicU64,
    progress_sent: AtomicU64,
    journal_commits: AtomicU64,
    journal_inputs: AtomicU64,
    journal_commit_micros: AtomicU64,
    store_failures: AtomicU64,
    snapshots: AtomicU64,
    snapshot_bytes: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    tools: Mutex<BTreeMap<&'static str, ToolStats>>,
}

/// Gauges read from the core at scrape time.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CoreGauges {
    /// Live MCP sessions.
    pub sessions: u64,
    /// Participants waiting in the queue.
    pub queued: u64,
    /// Active rooms.
    pub rooms: u64,
    /// Participants known (online, reconnecting or offline).
    pub participants: u64,
    /// Participants with a live session.
    pub online: u64,
    /// Approximate bytes held in every participant's inbox.
    pub inbox_bytes: u64,
}

impl Metrics {
    /// An MCP session was created.
    pub fn session_opened(&self) {
        self.sessions_opened.fetch_add(1, Relaxed);
    }
    /// An MCP session ended (any reason).
    pub fn session_closed(&self) {
        self.sessions_closed.fetch_add(1, Relaxed);
    }
    /// A session was closed because its GET stream dropped and did not come back.
    pub fn session_lost(&self) {
        self.sessions_lost.fetch_add(1, Relaxed);
    }
    /// An `initialize` was refused because of `--max-sessions`.
    pub fn session_refused(&self) {
        self.sessions_refused.fetch_add(1, Relaxed);
    }
    /// A GET (SSE) stream opened (`+1`) or closed (`-1`).
    pub fn get_stream(&self, delta: i64) {
        self.get_streams.fetch_add(delta, Relaxed);
    }
    /// A TCP connection was accepted (`+1`) or closed (`-1`).
    pub fn connection(&self, delta: i64) {
        self.connections.fetch_add(delta, Relaxed);
    }
    /// A chat or direct message was accepted for delivery.
    pub fn message_relayed(&self) {
        self.messages_relayed.fetch_add(1, Relaxed);
    }
    /// A notification was handed to a session.
    pub fn event_pushed(&self) {
        self.events_pushed.fetch_add(1, Relaxed);
    }
    /// A notification could not be handed over (session gone); it stays fetchable.
    pub fn push_failed(&self) {
        self.push_failures.fetch_add(1, Relaxed);
    }
    /// A `notifications/resources/updated` was sent.
    pub fn resource_updated(&self) {
        self.resource_updates.fetch_add(1, Relaxed);
    }
    /// A `notifications/progress` was sent.
    pub fn progress_sent(&self) {
        self.progress_sent.fetch_add(1, Relaxed);
    }
    /// The journal wrote `inputs` inputs in one commit that took `took`.
    pub fn journal_commit(&self, inputs: usize, took: Duration) {
        self.journal_commits.fetch_add(1, Relaxed);
        self.journal_inputs.fetch_add(inputs as u64, Relaxed);
        self.journal_commit_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
    /// A commit to the store failed (its requests got an error).
    pub fn store_failed(&self) {
        self.store_failures.fetch_add(1, Relaxed);
    }
    /// A snapshot of `bytes` was written.
    pub fn snapshot_saved(&self, bytes: usize, _took: Duration) {
        self.snapshots.fetch_add(1, Relaxed);
        self.snapshot_bytes.store(bytes as u64, Relaxed);
    }
    /// An HTTP request was refused before reaching MCP (`unauthorized`, `host`, `origin`).
    pub fn count_rejected(&self, reason: &'static str) {
        if let Ok(mut map) = self.rejected.lock() {
            *map.entry(reason).or_default() += 1;
        }
    }

    /// Live GET streams.
    pub fn get_streams(&self) -> i64 {
        self.get_streams.load(Relaxed)
    }

    /// Records one tool call's latency and whether it failed.
    pub fn observe_tool(&self, tool: &'static str, elapsed: Duration, is_error: bool) {
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS.iter().position(|&b| secs <= b).unwrap_or(BUCKETS.len());
        if let Ok(mut map) = self.tools.lock() {
            let stats = map.entry(tool).or_default();
            stats.buckets[slot] += 1;
            stats.count += 1;
            stats.sum_secs += secs;
            stats.errors += u64::from(is_error);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, core: CoreGauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge("mcp_chat_sessions", "Live MCP sessions.", to_i64(core.sessions));
        gauge("mcp_chat_sse_streams", "Open GET (SSE) streams.", self.get_streams());
        gauge("mcp_chat_connections", "Open TCP connections.", self.connections.load(Relaxed));
        gauge("mcp_chat_queued", "Participants waiting in the roulette queue.", to_i64(core.queued));
        gauge("mcp_chat_rooms", "Active chat rooms.", to_i64(core.rooms));
        gauge(
            "mcp_chat_participants",
            "Known participants (online, reconnecting or offline).",
            to_i64(core.participants),
        );
        gauge("mcp_chat_online", "Participants with a live session.", to_i64(core.online));
        gauge(
            "mcp_chat_inbox_bytes",
            "Approximate bytes of events and direct messages held in inboxes.",
            to_i64(core.inbox_bytes),
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter(
            "mcp_chat_sessions_opened_total",
            "MCP sessions created.",
            self.sessions_opened.load(Relaxed),
        );
        counter(
            "mcp_chat_sessions_closed_total",
            "MCP sessions ended for any reason.",
            self.sessions_closed.load(Relaxed),
        );
        counter(
            "mcp_chat_sessions_lost_total",
            "Sessions closed because their SSE stream dropped and did not return.",
            self.sessions_lost.load(Relaxed),
        );
        counter(
            "mcp_chat_sessions_refused_total",
            "Sessions refused at --max-sessions.",
            self.sessions_refused.load(Relaxed),
        );
        counter(
            "mcp_chat_messages_relayed_total",
            "Chat and direct messages accepted for delivery.",
            self.messages_relayed.load(Relaxed),
        );
        counter(
            "mcp_chat_events_pushed_total",
            "Event notifications handed to sessions.",
            self.events_pushed.load(Relaxed),
        );
        counter(
            "mcp_chat_push_failures_total",
            "Event notifications that could not be pushed (still fetchable).",
            self.push_failures.load(Relaxed),
        );
        counter(
            "mcp_chat_resource_updates_total",
            "notifications/resources/updated sent.",
            self.resource_updates.load(Relaxed),
        );
        counter(
            "mcp_chat_progress_notifications_total",
            "notifications/progress sent while tools waited.",
            self.progress_sent.load(Relaxed),
        );
        counter(
            "mcp_chat_journal_commits_total",
            "Commits to the store.",
            self.journal_commits.load(Relaxed),
        );
        counter(
            "mcp_chat_journal_inputs_total",
            "Inputs logged to the store.",
            self.journal_inputs.load(Relaxed),
        );
        counter(
            "mcp_chat_journal_commit_microseconds_total",
            "Time spent in commits to the store.",
            self.journal_commit_micros.load(Relaxed),
        );
        counter(
            "mcp_chat_store_failures_total",
            "Commits that failed (their requests got an error, nothing was applied).",
            self.store_failures.load(Relaxed),
        );
        counter("mcp_chat_snapshots_total", "Snapshots written.", self.snapshots.load(Relaxed));
        let _ = writeln!(
            out,
            "# HELP mcp_chat_snapshot_bytes Size of the last snapshot.\n# TYPE mcp_chat_snapshot_bytes gauge\nmcp_chat_snapshot_bytes {}",
            self.snapshot_bytes.load(Relaxed)
        );

        out.push_str("# HELP mcp_chat_http_rejected_total HTTP requests refused before MCP handling.\n");
        out.push_str("# TYPE mcp_chat_http_rejected_total counter\n");
        if let Ok(map) = self.rejected.lock() {
            for (reason, n) in map.iter() {
                let _ = writeln!(out, "mcp_chat_http_rejected_total{{reason=\"{reason}\"}} {n}");
            }
        }

        out.push_str("# HELP mcp_chat_tool_errors_total Tool calls that returned isError.\n");
        out.push_str("# TYPE mcp_chat_tool_errors_total counter\n");
        let tools = match self.tools.lock() {
            Ok(map) => map.iter().map(|(k, v)| (*k, v.buckets, v.count, v.sum_secs, v.errors)).collect(),
            Err(_) => Vec::new(),
        };
        for (tool, _, _, _, errors) in &tools {
            let _ = writeln!(out, "mcp_chat_tool_errors_total{{tool=\"{tool}\"}} {errors}");
        }
        out.push_str(
            "# HELP mcp_chat_tool_duration_seconds Tool call latency, including time spent waiting.\n",
        );
        out.push_str("# TYPE mcp_chat_tool_duration_seconds histogram\n");
        for (tool, buckets, count, sum, _) in &tools {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += buckets[i];
                let _ = writeln!(
                    out,
                    "mcp_chat_tool_duration_seconds_bucket{{tool=\"{tool}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ =
                writeln!(out, "mcp_chat_tool_duration_seconds_bucket{{tool=\"{tool}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "mcp_chat_tool_duration_seconds_sum{{tool=\"{tool}\"}} {sum}");
            let _ = writeln!(out, "mcp_chat_tool_duration_seconds_count{{tool=\"{tool}\"}} {count}");
        }
        out
    }

    /// Totals for `/healthz`.
    pub fn totals(&self) -> serde_json::Value {
        serde_json::json!({
            "sessions_opened": self.sessions_opened.load(Relaxed),
            "messages_relayed": self.messages_relayed.load(Relaxed),
            "events_pushed": self.events_pushed.load(Relaxed),
            "sse_streams": self.get_streams(),
        })
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_histogram() {
        let m = Metrics::default();
        m.observe_tool("send_message", Duration::from_micros(300), false);
        m.observe_tool("send_message", Duration::from_millis(3), true);
        m.observe_tool("send_message", Duration::from_secs(120), false);
        m.message_relayed();
        m.count_rejected("origin");
        let text = m.render(CoreGauges { queued: 2, ..CoreGauges::default() });
        assert!(text.contains("mcp_chat_queued 2\n"));
        assert!(text.contains("mcp_chat_messages_relayed_total 1\n"));
        assert!(text.contains("mcp_chat_http_rejected_total{reason=\"origin\"} 1\n"));
        assert!(
            text.contains("mcp_chat_tool_duration_seconds_bucket{tool=\"send_message\",le=\"0.0005\"} 1\n")
        );
        assert!(
            text.contains("mcp_chat_tool_duration_seconds_bucket{tool=\"send_message\",le=\"0.005\"} 2\n")
        );
        assert!(text.contains("mcp_chat_tool_duration_seconds_bucket{tool=\"send_message\",le=\"60\"} 2\n"));
        assert!(
            text.contains("mcp_chat_tool_duration_seconds_bucket{tool=\"send_message\",le=\"+Inf\"} 3\n")
        );
        assert!(text.contains("mcp_chat_tool_errors_total{tool=\"send_message\"} 1\n"));
    }
}
