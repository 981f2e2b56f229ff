//! Results: one [`Report`] per target, the server-to-floor ratios, the checks that decide
//! the exit status, and their rendering as a table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::fleet::ProcessUse;
use crate::procfs::{CpuUse, Machine};
use crate::stats::Percentiles;
use crate::target::Kind;

/// What one scenario measured on one target. Fields that do not apply stay `None`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// `server` or `floor`.
    pub target: Option<Kind>,
    /// Which round (from 1) with `--rounds`.
    pub round: usize,
    /// The endpoint.
    pub url: String,
    /// Length of the measured window.
    pub measured_s: f64,
    /// Pairs (message scenarios).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    /// Offered rate (open loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_per_s: Option<f64>,
    /// Messages sent in the measured window and received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// `messages` per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_s: Option<f64>,
    /// Send start (or due time, open loop) -> the partner has the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Percentiles>,
    /// Open loop: how late sends started after their due time (generator's share).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_ms: Option<Percentiles>,
    /// Sends accepted by the server, whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u64>,
    /// Distinct messages received, whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    /// Accepted but never received (after the drain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Received more than once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicated: Option<u64>,
    /// Received after a higher sequence number of the same stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reordered: Option<u64>,
    /// Delivered to the wrong session, room or with the wrong sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misrouted: Option<u64>,
    /// Sessions opened (connect, idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// Sessions opened per second (connect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_per_s: Option<f64>,
    /// Time to open one session (connect, idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_ms: Option<Percentiles>,
    /// Streams (or poll loops) that ended before the run did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams_ended_early: Option<u64>,
    /// Target memory before the sessions were opened (idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<u64>,
    /// Target memory at the end of the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
    /// (rss - rss_before) / sessions (idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_session_kib: Option<f64>,
    /// Generator memory at the end (idle), to show what holding the sessions costs here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_rss_kib: Option<u64>,
    /// CPU seconds used in the measured window.
    pub cpu: CpuUse,
    /// Target CPU per message or per session opened, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_cpu_us_per_op: Option<f64>,
    /// Generator CPU per message or per session opened, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_cpu_us_per_op: Option<f64>,
    /// With several nodes (or a Redis pid): each node's CPU and memory, in URL order.
    /// `cpu.target_s`, `target_cpu_us_per_op` and `rss_kib` are then the nodes' totals.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<ProcessUse>,
    /// The Redis server's CPU and memory (with `--redis-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<ProcessUse>,
    /// Nodes + Redis CPU per message or per session opened, in microseconds (with
    /// several nodes or a Redis pid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_cpu_us_per_op: Option<f64>,
    /// Requests refused with `isError`.
    pub rejected: u64,
    /// Requests that failed (HTTP, JSON-RPC, timeouts).
    pub failed: u64,
    /// A few of the error messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Report {
    /// Correctness problems: each makes the run fail.
    pub fn failures(&self) -> Vec<String> {
        let name = self.target.map_or("target", Kind::label);
        let mut out = Vec::new();
        let mut positive = |what: &str, value: Option<u64>| {
            if let Some(n) = value.filter(|n| *n > 0) {
                out.push(format!("{name}: {n} {what}"));
            }
        };
        positive("messages lost", self.lost);
        positive("messages duplicated", self.duplicated);
        positive("messages misrouted", self.misrouted);
        positive("streams ended early", self.streams_ended_early);
        positive("requests refused", Some(self.rejected));
        positive("requests failed", Some(self.failed));
        if self.messages == Some(0) {
            out.push(format!("{name}: no message was measured"));
        }
        if self.sessions == Some(0) {
            out.push(format!("{name}: no session was opened"));
        }
        out
    }

    /// The headline throughput: messages/s or sessions/s.
    fn throughput(&self) -> Option<f64> {
        self.msgs_per_s.or(self.sessions_per_s)
    }

    /// The figure rounds are ranked by: p99 latency in the open loop (where throughput
    /// is the offered rate), else throughput, or memory per session for `idle`.
    fn headline(&self) -> f64 {
        let open_loop_p99 = self.offered_per_s.and(self.latency_ms).map(|p| p.p99);
        open_loop_p99.or(self.throughput()).or(self.rss_per_session_kib).unwrap_or(0.0)
    }
}

/// The server as a multiple of the floor.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ratio {
    /// Server throughput / floor throughput (messages/s or sessions/s); higher is better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// Server p50 latency / floor p50; lower is better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// Server p99 latency / floor p99; lower is better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// Server memory per session / floor memory per session; lower is better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_session: Option<f64>,
}

impl Ratio {
    /// Ratios of `server` to `floor`, where both have the figure.
    pub fn of(server: &Report, floor: &Report) -> Ratio {
        let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let lat =
            |r: &Report, f: fn(&Percentiles) -> f64| r.latency_ms.as_ref().or(r.open_ms.as_ref()).map(f);
        Ratio {
            throughput: div(server.throughput(), floor.throughput()),
            p50: div(lat(server, |p| p.p50), lat(floor, |p| p.p50)),
            p99: div(lat(server, |p| p.p99), lat(floor, |p| p.p99)),
            rss_per_session: div(server.rss_per_session_kib, floor.rss_per_session_kib),
        }
    }
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The scenario name.
    pub scenario: String,
    /// Its settings in words.
    pub settings: String,
    /// The command line.
    pub command: String,
    /// Where it ran.
    pub machine: Machine,
    /// 1-minute load average when the run finished.
    pub load_average_after: f64,
    /// How late a 500 µs sleep woke up, before the runs (see `jitter.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wakeup_lateness_before_ms: Option<Percentiles>,
    /// The same, after the runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wakeup_lateness_after_ms: Option<Percentiles>,
    /// One report per target, floor first: the median round of each.
    pub runs: Vec<Report>,
    /// Every round, when there was more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Report>,
    /// Server / floor of each round's headline figure: throughput (p99 latency in the
    /// open loop, memory per session for `idle`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ratio_by_round: Vec<f64>,
    /// Server / floor, when both ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Ratio>,
    /// Correctness failures (empty = pass).
    pub failures: Vec<String>,
}

impl Summary {
    /// Builds the summary and its checks.
    pub fn new(
        scenario: &str,
        settings: String,
        machine: Machine,
        lateness: [Option<Percentiles>; 2],
        all: Vec<Report>,
    ) -> Summary {
        let failures = all.iter().flat_map(Report::failures).collect();
        let rounds = all.iter().map(|r| r.round).max().unwrap_or(1);
        let median = |kind| {
            let mut of_kind: Vec<&Report> = all.iter().filter(|r| r.target == Some(kind)).collect();
            of_kind.sort_by(|a, b| a.headline().total_cmp(&b.headline()));
            of_kind.get(of_kind.len() / 2).map(|r| (*r).clone())
        };
        let runs: Vec<Report> = [Kind::Floor, Kind::Server].into_iter().filter_map(median).collect();
        let ratio_by_round = (1..=rounds)
            .filter_map(|round| {
                let find = |kind| all.iter().find(|r| r.round == round && r.target == Some(kind));
                match (find(Kind::Server), find(Kind::Floor)) {
                    (Some(s), Some(f)) if f.headline() > 0.0 => Some(s.headline() / f.headline()),
                    _ => None,
                }
            })
            .collect();
        let find = |kind| runs.iter().find(|r| r.target == Some(kind));
        let ratio = match (find(Kind::Server), find(Kind::Floor)) {
            (Some(server), Some(floor)) => Some(Ratio::of(server, floor)),
            _ => None,
        };
        Summary {
            scenario: scenario.to_owned(),
            settings,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine,
            load_average_after: crate::procfs::load_average(),
            wakeup_lateness_before_ms: lateness[0],
            wakeup_lateness_after_ms: lateness[1],
            runs,
            rounds: if rounds > 1 { all } else { Vec::new() },
            ratio_by_round: if rounds > 1 { ratio_by_round } else { Vec::new() },
            ratio,
            failures,
        }
    }

    /// What rounds are ranked and compared by (see [`Report::headline`]).
    fn headline_name(&self) -> &'static str {
        match self.runs.first() {
            Some(r) if r.offered_per_s.is_some() => "p99 latency",
            Some(r) if r.throughput().is_some() => "throughput",
            Some(r) if r.rss_per_session_kib.is_some() => "memory per session",
            _ => "headline figure",
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "chat-load {}: {}", self.scenario, self.settings);
        let _ = writeln!(
            out,
            "machine: {} CPUs ({}), {} MiB, Linux {}; load average {:.2} before, {:.2} after",
            m.cpus, m.cpu, m.memory_mib, m.kernel, m.load_average_1m, self.load_average_after
        );
        let lateness = |p: &Option<Percentiles>| {
            p.map_or_else(
                || "?".to_owned(),
                |p| format!("p50 {:.3} / p99 {:.3} / max {:.3} ms", p.p50, p.p99, p.max),
            )
        };
        let _ = writeln!(
            out,
            "wake-up lateness of a 500 us sleep: {} before, {} after",
            lateness(&self.wakeup_lateness_before_ms),
            lateness(&self.wakeup_lateness_after_ms)
        );
        if !self.rounds.is_empty() {
            let rounds = self.rounds.iter().map(|r| r.round).max().unwrap_or(1);
            let _ = write!(out, "median of {rounds} rounds per target");
            if !self.ratio_by_round.is_empty() {
                let per_round: Vec<String> = self.ratio_by_round.iter().map(|r| format!("{r:.2}x")).collect();
                let _ = write!(
                    out,
                    "; server/floor by round ({}): {}",
                    self.headline_name(),
                    per_round.join(", ")
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
        let with_ratio = self.ratio.is_some();
        let mut header = format!("{:<28}", "");
        for run in &self.runs {
            let _ = write!(header, "{:>14}", run.target.map_or("?", Kind::label));
        }
        if with_ratio {
            let _ = write!(header, "{:>14}", "server/floor");
        }
        let _ = writeln!(out, "{}", header.trim_end());
        for row in ROWS {
            let values: Vec<Option<f64>> = self.runs.iter().map(|r| (row.get)(r)).collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let mut line = format!("{:<28}", row.label);
            for v in &values {
                let _ =
                    write!(line, "{:>14}", v.map_or_else(|| "-".to_owned(), |v| format_value(v, row.digits)));
            }
            if with_ratio && row.ratio {
                let server = self.runs.iter().position(|r| r.target == Some(Kind::Server));
                let floor = self.runs.iter().position(|r| r.target == Some(Kind::Floor));
                if let (Some(s), Some(f)) = (server, floor)
                    && let (Some(sv), Some(fv)) = (values[s], values[f])
                    && fv > 0.0
                {
                    let _ = write!(line, "{:>14}", format!("{:.2}x", sv / fv));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        for run in &self.runs {
            write_processes(&mut out, run);
        }
        for run in &self.runs {
            for error in &run.errors {
                let _ = writeln!(out, "{} error: {error}", run.target.map_or("?", Kind::label));
            }
        }
        if self.failures.is_empty() {
            let _ = writeln!(out, "\ncorrectness: ok");
        } else {
            let _ = writeln!(out, "\ncorrectness: FAILED ({})", self.failures.join("; "));
        }
        out
    }
}

/// The per-process lines of a run on several nodes (or with a Redis pid).
fn write_processes(out: &mut String, run: &Report) {
    if run.nodes.len() < 2 && run.redis.is_none() {
        return;
    }
    let what = run.target.map_or("?", Kind::label);
    let title = format!("{what} processes");
    let _ = writeln!(out, "\n{title:<35}{:>14}{:>14}{:>14}  serves", "CPU (s)", "CPU/op (us)", "RSS (MiB)");
    let cell = |v: Option<f64>, digits: usize| v.map_or_else(|| "-".to_owned(), |v| format_value(v, digits));
    let mut line = |name: String, p: &ProcessUse, role: &str| {
        let rss = p.rss_kib.map(|k| k as f64 / 1024.0);
        let line = format!(
            "{name:<35}{:>14}{:>14}{:>14}  {role}",
            cell(p.cpu_s, 2),
            cell(p.cpu_us_per_op, 1),
            cell(rss, 1)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    };
    for (i, node) in run.nodes.iter().enumerate() {
        let role = if node.clients { "clients" } else { "replication only" };
        let name = format!("node {} {}", i + 1, node.url.as_deref().unwrap_or(""));
        line(name, node, role);
    }
    let nodes = ProcessUse {
        cpu_s: run.cpu.target_s,
        cpu_us_per_op: run.target_cpu_us_per_op,
        rss_kib: run.rss_kib,
        ..ProcessUse::default()
    };
    line("nodes total".to_owned(), &nodes, "");
    if let Some(redis) = &run.redis {
        line(format!("redis (pid {})", redis.pid.unwrap_or(0)), redis, "store");
        let all = ProcessUse {
            cpu_s: match (run.cpu.target_s, redis.cpu_s) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            },
            cpu_us_per_op: run.system_cpu_us_per_op,
            ..ProcessUse::default()
        };
        line("nodes + redis".to_owned(), &all, "");
    }
}

/// CPU seconds spread over `ops` operations, in microseconds each.
pub fn per_op(cpu_s: Option<f64>, ops: u64) -> Option<f64> {
    cpu_s.filter(|_| ops > 0).map(|s| s * 1e6 / ops as f64)
}

fn format_value(value: f64, digits: usize) -> String {
    if digits == 0 { group_thousands(value.round() as i64) } else { format!("{value:.digits$}") }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// One table row.
struct Row {
    label: &'static str,
    get: fn(&Report) -> Option<f64>,
    digits: usize,
    /// Whether a server/floor ratio makes sense for it.
    ratio: bool,
}

fn count(v: Option<u64>) -> Option<f64> {
    v.map(|n| n as f64)
}

const ROWS: &[Row] = &[
    Row { label: "offered msgs/s", get: |r| r.offered_per_s, digits: 0, ratio: false },
    Row { label: "messages/s", get: |r| r.msgs_per_s, digits: 0, ratio: true },
    Row { label: "latency p50 (ms)", get: |r| r.latency_ms.map(|p| p.p50), digits: 3, ratio: true },
    Row { label: "latency p90 (ms)", get: |r| r.latency_ms.map(|p| p.p90), digits: 3, ratio: true },
    Row { label: "latency p99 (ms)", get: |r| r.latency_ms.map(|p| p.p99), digits: 3, ratio: true },
    Row { label: "latency p99.9 (ms)", get: |r| r.latency_ms.map(|p| p.p999), digits: 3, ratio: true },
    Row { label: "latency max (ms)", get: |r| r.latency_ms.map(|p| p.max), digits: 3, ratio: true },
    Row { label: "send lag p99 (ms)", get: |r| r.send_lag_ms.map(|p| p.p99), digits: 3, ratio: false },
    Row { label: "messages measured", get: |r| count(r.messages), digits: 0, ratio: false },
    Row { label: "accepted (whole run)", get: |r| count(r.accepted), digits: 0, ratio: false },
    Row { label: "lost", get: |r| count(r.lost), digits: 0, ratio: false },
    Row { label: "duplicated", get: |r| count(r.duplicated), digits: 0, ratio: false },
    Row { label: "reordered", get: |r| count(r.reordered), digits: 0, ratio: false },
    Row { label: "misrouted", get: |r| count(r.misrouted), digits: 0, ratio: false },
    Row { label: "sessions", get: |r| count(r.sessions), digits: 0, ratio: false },
    Row { label: "sessions/s", get: |r| r.sessions_per_s, digits: 0, ratio: true },
    Row { label: "open p50 (ms)", get: |r| r.open_ms.map(|p| p.p50), digits: 3, ratio: true },
    Row { label: "open p99 (ms)", get: |r| r.open_ms.map(|p| p.p99), digits: 3, ratio: true },
    Row { label: "streams ended early", get: |r| count(r.streams_ended_early), digits: 0, ratio: false },
    Row {
        label: "target RSS before (MiB)",
        get: |r| r.rss_before_kib.map(|k| k as f64 / 1024.0),
        digits: 1,
        ratio: false,
    },
    Row { label: "target RSS (MiB)", get: |r| r.rss_kib.map(|k| k as f64 / 1024.0), digits: 1, ratio: true },
    Row { label: "target RSS/session (KiB)", get: |r| r.rss_per_session_kib, digits: 1, ratio: true },
    Row {
        label: "generator RSS (MiB)",
        get: |r| r.generator_rss_kib.map(|k| k as f64 / 1024.0),
        digits: 1,
        ratio: false,
    },
    Row { label: "target CPU (s)", get: |r| r.cpu.target_s, digits: 2, ratio: true },
    Row { label: "generator CPU (s)", get: |r| r.cpu.generator_s, digits: 2, ratio: false },
    Row { label: "target CPU/op (us)", get: |r| r.target_cpu_us_per_op, digits: 1, ratio: true },
    Row { label: "generator CPU/op (us)", get: |r| r.generator_cpu_us_per_op, digits: 1, ratio: false },
    Row { label: "redis CPU (s)", get: |r| r.redis.as_ref().and_then(|p| p.cpu_s), digits: 2, ratio: false },
    Row {
        label: "redis CPU/op (us)",
        get: |r| r.redis.as_ref().and_then(|p| p.cpu_us_per_op),
        digits: 1,
        ratio: false,
    },
    Row { label: "nodes+redis CPU/op (us)", get: |r| r.system_cpu_us_per_op, digits: 1, ratio: false },
    Row { label: "refused", get: |r| count(Some(r.rejected)), digits: 0, ratio: false },
    Row { label: "failed", get: |r| count(Some(r.failed)), digits: 0, ratio: false },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(-1_234_567), "-1,234,567");
    }

    #[test]
    fn flags_loss_and_computes_ratios() {
        let floor = Report {
            target: Some(Kind::Floor),
            msgs_per_s: Some(1000.0),
            lost: Some(0),
            ..Report::default()
        };
        let server = Report {
            target: Some(Kind::Server),
            msgs_per_s: Some(600.0),
            lost: Some(2),
            ..Report::default()
        };
        assert!(floor.failures().is_empty());
        assert_eq!(server.failures(), vec!["server: 2 messages lost".to_owned()]);
        let ratio = Ratio::of(&server, &floor);
        assert_eq!(ratio.throughput, Some(0.6));
    }
}
