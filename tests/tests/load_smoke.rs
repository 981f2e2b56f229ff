//! Smoke test of the load generator: every scenario runs for about a second at tiny scale
//! against the real server, and the generator's own correctness figures must be clean
//! (every message received exactly once, no failed request, no stream lost). Timing is
//! not checked: CI machines vary too much. Two runs drive several nodes of one chat on a
//! real redis-server.

use std::time::Duration;

use serde_json::Value;
use tests::{RedisServer, ServerProcess, binary, within};

/// Server flags that keep its protective limits out of the way, as `--spawn-server` does.
const GENEROUS: &[&str] = &[
    "--rate-messages",
    "1000000",
    "--rate-window",
    "1s",
    "--mailbox-capacity",
    "100000",
    "--max-sessions-per-address",
    "0",
];

/// Runs `chat-load <args>` against `server` for one second and returns its JSON summary,
/// failing the test if the generator reports a correctness failure.
async fn load(server: &ServerProcess, args: &[&str]) -> Value {
    let pid = server.pid().to_string();
    let mut all = args.to_vec();
    all.extend(["--url", &server.url, "--server-pid", &pid]);
    load_with(&all).await
}

/// Runs `chat-load <args> --json` for one second and returns its JSON summary, failing
/// the test on a correctness failure.
async fn load_with(args: &[&str]) -> Value {
    let output = within(
        Duration::from_secs(60),
        "chat-load finishes",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
            .args(args)
            .arg("--json")
            .args(["--duration", "1s", "--warmup", "0s", "--drain", "3s", "--setup-concurrency", "8"])
            .output(),
    )
    .await
    .expect("run chat-load");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chat-load {args:?} failed ({}):\n{stderr}", output.status);
    let summary: Value = serde_json::from_slice(&output.stdout).expect("chat-load prints JSON with --json");
    assert_eq!(summary["failures"], Value::Array(vec![]), "{stderr}");
    summary
}

/// The report of the run against `target` (`server` or `floor`).
fn run<'a>(summary: &'a Value, target: &str) -> &'a Value {
    summary["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["target"] == target))
        .unwrap_or_else(|| panic!("no {target} run in {summary:#}"))
}

/// Checks the message accounting of one run: something measured, all accepted messages
/// received once, nothing misrouted or failed.
fn assert_messages_clean(report: &Value) {
    let n = |key: &str| report[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {report:#}"));
    assert!(n("messages") > 0, "no message measured: {report:#}");
    assert!(n("accepted") > 0 && n("received") == n("accepted"), "{report:#}");
    for key in ["lost", "duplicated", "misrouted", "streams_ended_early", "failed", "rejected"] {
        assert_eq!(n(key), 0, "{key} in {report:#}");
    }
    assert!(report["latency_ms"]["p50"].as_f64().is_some_and(|p| p > 0.0), "{report:#}");
}

#[tokio::test]
async fn relay_closed_loop_against_server_and_floor() {
    let server = ServerProcess::start(GENEROUS).await;
    let summary = load(&server, &["relay", "--pairs", "3"]).await;
    assert_messages_clean(run(&summary, "server"));
    assert_messages_clean(run(&summary, "floor"));
    assert!(summary["ratio"]["throughput"].as_f64().is_some_and(|r| r > 0.0), "{summary:#}");
    assert!(run(&summary, "server")["rss_kib"].as_u64().is_some_and(|kib| kib > 0));
}

#[tokio::test]
async fn relay_open_loop() {
    let server = ServerProcess::start(GENEROUS).await;
    let summary = load(&server, &["relay", "--pairs", "4", "--rate", "200", "--floor", "skip"]).await;
    let report = run(&summary, "server");
    assert_messages_clean(report);
    assert_eq!(report["offered_per_s"].as_f64(), Some(200.0));
    assert!(report["send_lag_ms"]["p99"].as_f64().is_some(), "{report:#}");
}

#[tokio::test]
async fn tools_only() {
    let server = ServerProcess::start(GENEROUS).await;
    let summary = load(&server, &["tools-only", "--pairs", "2", "--floor", "skip"]).await;
    assert_messages_clean(run(&summary, "server"));
}

#[tokio::test]
async fn direct_messages() {
    let server = ServerProcess::start(GENEROUS).await;
    let summary = load(&server, &["dm", "--pairs", "2", "--ack-every", "5", "--floor", "skip"]).await;
    assert_messages_clean(run(&summary, "server"));
}

#[tokio::test]
async fn sessionless_tools_only_and_direct_messages() {
    let server = ServerProcess::start(GENEROUS).await;
    for scenario in ["tools-only", "dm"] {
        let summary = load(&server, &[scenario, "--pairs", "2", "--sessionless"]).await;
        assert!(summary["settings"].as_str().is_some_and(|s| s.contains("2026-07-28")), "{summary:#}");
        assert_messages_clean(run(&summary, "server"));
    }
    // Relay needs GET streams, which the session-less revision has not.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
        .args(["relay", "--sessionless", "--url", &server.url, "--duration", "1s"])
        .output()
        .await
        .expect("run chat-load");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("GET streams"));
}

#[tokio::test]
async fn connect() {
    let server = ServerProcess::start(GENEROUS).await;
    let summary = load(&server, &["connect", "--concurrency", "2", "--floor", "skip"]).await;
    let report = run(&summary, "server");
    assert!(report["sessions"].as_u64().is_some_and(|n| n > 0), "{report:#}");
    assert!(report["sessions_per_s"].as_f64().is_some_and(|r| r > 0.0), "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
}

#[tokio::test]
async fn idle() {
    let server = ServerProcess::start(GENEROUS).await;
    let summary = load(&server, &["idle", "--sessions", "20", "--checkin", "--floor", "skip"]).await;
    let report = run(&summary, "server");
    assert_eq!(report["sessions"], 20, "{report:#}");
    assert_eq!(report["streams_ended_early"], 0, "{report:#}");
    assert!(report["rss_per_session_kib"].as_f64().is_some(), "{report:#}");
}

/// The pid of the redis-server listening on `port` (it shows `127.0.0.1:<port>` as its
/// process title).
fn redis_pid(port: u16) -> u32 {
    let title = format!("127.0.0.1:{port}");
    let entries = std::fs::read_dir("/proc").expect("read /proc");
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&title))
        })
        .expect("the redis-server process")
}

/// Flags for a node of the chat in `redis`, as in tests/http_nodes.rs.
fn node_flags(redis: &RedisServer) -> Vec<&str> {
    let mut flags = vec!["--store", redis.url.as_str(), "--node-heartbeat", "200ms", "--node-timeout", "1s"];
    flags.extend(GENEROUS);
    flags
}

/// Per-process CPU figures of a run on several nodes.
fn assert_processes(report: &Value, nodes: usize) {
    let listed = report["nodes"].as_array().unwrap_or_else(|| panic!("no nodes in {report:#}"));
    assert_eq!(listed.len(), nodes, "{report:#}");
    for node in listed {
        assert!(node["url"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:")), "{report:#}");
        assert!(node["cpu_s"].as_f64().is_some() && node["cpu_us_per_op"].as_f64().is_some(), "{report:#}");
    }
    assert!(report["cpu"]["target_s"].as_f64().is_some(), "{report:#}");
}

#[tokio::test]
async fn relay_over_two_nodes_on_redis() {
    let redis = RedisServer::start().await;
    let flags = node_flags(&redis);
    let (n1, n2) = (ServerProcess::start(&flags).await, ServerProcess::start(&flags).await);
    let pids = format!("{},{}", n1.pid(), n2.pid());
    let redis_pid = redis_pid(redis.port).to_string();
    let urls = [n1.url.as_str(), n2.url.as_str()];
    let summary = load_with(&[
        "relay",
        "--pairs",
        "4",
        "--floor",
        "skip",
        "--url",
        urls[0],
        "--url",
        urls[1],
        "--server-pid",
        &pids,
        "--redis-pid",
        &redis_pid,
    ])
    .await;
    let report = run(&summary, "server");
    assert_messages_clean(report);
    assert_processes(report, 2);
    assert!(report["nodes"].as_array().is_some_and(|n| n.iter().all(|n| n["clients"] == true)));
    assert_eq!(report["redis"]["pid"].as_u64(), redis_pid.parse().ok(), "{report:#}");
    assert!(report["redis"]["cpu_s"].as_f64().is_some(), "{report:#}");
    assert!(report["system_cpu_us_per_op"].as_f64().is_some(), "{report:#}");
}

#[tokio::test]
async fn spawned_nodes_with_one_serving_the_clients() {
    let redis = RedisServer::start().await;
    let server = binary("chat-mcp-http");
    let server = server.to_str().expect("UTF-8 path");
    let summary = load_with(&[
        "dm",
        "--pairs",
        "2",
        "--ack-every",
        "5",
        "--floor",
        "skip",
        "--spawn-server",
        server,
        "--nodes",
        "2",
        "--redis-url",
        &redis.url,
        "--client-nodes",
        "1",
        "--server-arg=--node-heartbeat",
        "--server-arg=200ms",
        "--server-arg=--node-timeout",
        "--server-arg=1s",
    ])
    .await;
    let report = run(&summary, "server");
    assert_messages_clean(report);
    assert_processes(report, 2);
    let clients: Vec<&Value> =
        report["nodes"].as_array().into_iter().flatten().map(|n| &n["clients"]).collect();
    assert_eq!(clients, [&Value::Bool(true), &Value::Bool(false)], "{report:#}");
}

#[tokio::test]
async fn refuses_to_run_without_a_target() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
        .args(["relay", "--duration", "1s"])
        .output()
        .await
        .expect("run chat-load");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--spawn-server"));
}
