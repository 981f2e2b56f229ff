//! Command-line interface. Target and run options are global so they can follow the
//! scenario name (`chat-load relay --pairs 100 --duration 10s --spawn-server PATH`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A duration written as `500ms`, `10s`, `2m` or a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 =
            number.parse().map_err(|_| format!("'{text}' is not a duration; use e.g. 500ms, 10s or 2m"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" | "min" => 60.0,
            other => return Err(format!("unknown unit '{other}' in '{text}'; use ms, s or m")),
        };
        let secs = value * scale;
        if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
            return Err(format!("'{text}' is out of range (0 to 24 h)"));
        }
        Ok(Span(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) { write!(f, "{}s", ms / 1000) } else { write!(f, "{ms}ms") }
    }
}

/// Load generator for mcp-chat: drives the real server over MCP Streamable HTTP + SSE and
/// compares it with a bare axum POST->SSE relay (the transport floor) in the same run.
///
/// Every scenario is bounded in time and uses loopback only. By default each run measures
/// the floor first, then the server, and reports the server as a ratio of the floor.
/// The process exits with status 1 when a correctness check fails (a lost, duplicated or
/// misrouted message, a failed request, a stream closed early).
#[derive(Debug, Parser)]
#[command(name = "chat-load", version, about, long_about)]
pub struct Cli {
    /// Where the load goes.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How long and how the results are shown.
    #[command(flatten)]
    pub run: RunArgs,
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Which targets to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FloorMode {
    /// Measure the floor relay, then the server, and report their ratio.
    Compare,
    /// Measure the server only.
    Skip,
    /// Measure the floor relay only (no server needed).
    Only,
}

/// The server under test.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// MCP endpoint of a running server, e.g. http://127.0.0.1:8123/mcp. Repeat it (or
    /// give a comma-separated list) for several nodes of one chat (`--store redis://`):
    /// sessions are spread over them round-robin, so partners often sit on different
    /// nodes.
    #[arg(long, global = true, value_delimiter = ',', conflicts_with = "spawn_server")]
    pub url: Vec<String>,

    /// Start this chat-mcp-http binary on a free loopback port with limits that never
    /// throttle the load (message rate, sessions, queue, mailboxes), and stop it at the end.
    #[arg(long, global = true, value_name = "PATH")]
    pub spawn_server: Option<PathBuf>,

    /// With --spawn-server: start this many server processes (nodes), each on its own
    /// free loopback port with `--store <--redis-url>`, and spread sessions over them.
    #[arg(long, global = true, value_name = "N", requires = "spawn_server",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: Option<u16>,

    /// With --spawn-server: the Redis the spawned nodes share (`redis://HOST:PORT[/DB]`,
    /// passed as their --store). Needed for more than one node.
    #[arg(long, global = true, value_name = "URL", requires = "spawn_server")]
    pub redis_url: Option<String>,

    /// Open sessions on the first K nodes only; the others get none and only apply what
    /// the chat replicates to them (their CPU per message is the cost of that).
    #[arg(long, global = true, value_name = "K", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub client_nodes: Option<u16>,

    /// Extra argument for the spawned server (repeat for several: --server-arg=--log-level
    /// --server-arg=debug). Later flags override the generator's defaults.
    #[arg(long = "server-arg", global = true, value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,

    /// Process id of the --url server, for its memory (VmRSS) and CPU time from /proc.
    /// With several URLs, one per URL in the same order (pid i belongs to url i);
    /// repeatable or comma-separated.
    #[arg(long, global = true, value_name = "PID", value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Process id of the Redis server the nodes share, for its CPU time per message.
    #[arg(long, global = true, value_name = "PID")]
    pub redis_pid: Option<u32>,

    /// Bearer token for a server started with --auth-token.
    #[arg(long, global = true, env = "MCP_CHAT_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Speak MCP 2026-07-28 without sessions (tools-only and dm): no initialize, each
    /// client named by the handle its binding call returned, events fetched by polling
    /// wait_for_events. The floor relay speaks only sessions, so it is not measured.
    #[arg(long, global = true)]
    pub sessionless: bool,

    /// Measure the floor relay too (compare), not at all (skip), or alone (only).
    #[arg(long, global = true, value_enum, default_value_t = FloorMode::Compare)]
    pub floor: FloorMode,
}

/// Timing and output.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Measured time per target (after the warm-up).
    #[arg(long, global = true, default_value = "10s")]
    pub duration: Span,

    /// Load applied before measuring starts (results from it are discarded).
    #[arg(long, global = true, default_value = "1s")]
    pub warmup: Span,

    /// After the load stops, messages still in flight are waited for until none has
    /// arrived for this long; those still missing then count as lost.
    #[arg(long, global = true, default_value = "5s")]
    pub drain: Span,

    /// Sessions set up at once before the measurement (pairing, idle sessions).
    #[arg(long, global = true, default_value_t = 64)]
    pub setup_concurrency: usize,

    /// Most requests in flight at once (GET streams not counted), and so most pooled
    /// connections. Requests beyond it wait in the generator, and the wait counts as
    /// latency.
    #[arg(long, global = true, default_value_t = 512)]
    pub max_connections: usize,

    /// Measure each target this many times, alternating floor and server, and report the
    /// median round of each (by throughput, or memory for idle) with every round's
    /// server/floor ratio. Smooths out bursts of noise from other work on the machine.
    #[arg(long, global = true, default_value_t = 1)]
    pub rounds: usize,

    /// Print the results as JSON on stdout (the table then goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Pairs matched through enter_queue exchange room messages; latency = send start ->
    /// the partner reads `message.received` on its SSE stream. Closed loop (ping-pong)
    /// unless --rate is given.
    Relay(MessagingArgs),
    /// Like relay, but receivers call wait_for_events in a loop instead of reading
    /// notifications (no GET stream).
    ToolsOnly(MessagingArgs),
    /// Direct messages between checked-in clients (send_message with recipient_id).
    Dm(MessagingArgs),
    /// Sessions opened per second: initialize + initialized + GET stream + enter_queue.
    Connect(ConnectArgs),
    /// Hold many sessions with open streams and report the server's memory per session.
    Idle(IdleArgs),
    /// Run the floor relay on its own (used internally; also handy for manual tests).
    #[command(hide = true)]
    FloorServer(FloorServerArgs),
}

impl Scenario {
    /// The scenario's command name.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Relay(_) => "relay",
            Scenario::ToolsOnly(_) => "tools-only",
            Scenario::Dm(_) => "dm",
            Scenario::Connect(_) => "connect",
            Scenario::Idle(_) => "idle",
            Scenario::FloorServer(_) => "floor-server",
        }
    }
}

/// Options of the message scenarios.
#[derive(Clone, Debug, Args)]
pub struct MessagingArgs {
    /// Pairs of sessions exchanging messages.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,

    /// Open loop: offer this many messages per second in total, spread evenly over all
    /// senders, whatever the replies do. Latency is measured from each message's intended
    /// send time, so a stalled server cannot hide its queueing (no coordinated omission).
    /// Without it: closed loop, one message in flight per pair.
    #[arg(long, value_name = "MSGS_PER_S")]
    pub rate: Option<f64>,

    /// Size of each message body in bytes (at least the ~40-byte header carrying stream,
    /// sequence number and send time).
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,

    /// Acknowledge events every N received messages (wait_for_events with after_seq and
    /// timeout 0) so mailboxes and event buffers stay small. 0 = never. Default: 50 for
    /// dm (direct messages wait in the mailbox until acknowledged), 0 otherwise.
    #[arg(long, value_name = "N")]
    pub ack_every: Option<u64>,

    /// Open loop: most sends outstanding at once; beyond it the dispatcher waits, and the
    /// wait shows up as latency (and in "send lag").
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
}

/// Options of `connect`.
#[derive(Clone, Debug, Args)]
pub struct ConnectArgs {
    /// Sessions being opened at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,

    /// Keep every opened session (and its stream) until the end instead of closing it
    /// (DELETE) right away. Bounded by the server's --max-sessions.
    #[arg(long)]
    pub hold: bool,
}

/// Options of `idle`.
#[derive(Clone, Debug, Args)]
pub struct IdleArgs {
    /// Sessions to open and hold, each with an open GET stream.
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,

    /// Also check each session in as a messaging client (an identity in the core).
    #[arg(long)]
    pub checkin: bool,
}

/// Options of the hidden `floor-server` command.
#[derive(Clone, Debug, Args)]
pub struct FloorServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// TCP port; 0 picks a free one (printed on stdout).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spans() {
        let d = |s: &str| s.parse::<Span>().map(|d| d.0);
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert!(d("").is_err() && d("5x").is_err() && d("-1s").is_err());
    }

    #[test]
    fn global_flags_follow_the_scenario() {
        let cli = Cli::try_parse_from([
            "chat-load",
            "relay",
            "--pairs",
            "3",
            "--duration",
            "1s",
            "--floor",
            "only",
        ])
        .expect("valid flags");
        assert_eq!(cli.run.duration, Span(Duration::from_secs(1)));
        assert_eq!(cli.target.floor, FloorMode::Only);
        assert!(matches!(cli.scenario, Scenario::Relay(MessagingArgs { pairs: 3, .. })));
    }

    #[test]
    fn several_urls_and_pids() {
        let cli = Cli::try_parse_from([
            "chat-load",
            "relay",
            "--url",
            "http://127.0.0.1:1/mcp,http://127.0.0.1:2/mcp",
            "--url",
            "http://127.0.0.1:3/mcp",
            "--server-pid",
            "10",
            "--server-pid",
            "20,30",
            "--redis-pid",
            "40",
        ])
        .expect("valid flags");
        assert_eq!(cli.target.url.len(), 3);
        assert_eq!(cli.target.url[2], "http://127.0.0.1:3/mcp");
        assert_eq!(cli.target.server_pid, vec![10, 20, 30]);
        assert_eq!(cli.target.redis_pid, Some(40));
        assert!(
            Cli::try_parse_from(["chat-load", "relay", "--nodes", "2"]).is_err(),
            "--nodes needs --spawn-server"
        );
        assert!(
            Cli::try_parse_from([
                "chat-load",
                "relay",
                "--url",
                "http://127.0.0.1:1/mcp",
                "--spawn-server",
                "x"
            ])
            .is_err()
        );
    }
}
