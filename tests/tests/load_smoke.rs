//! Smoke test of the load generator: every scenario runs for about a second at tiny scale
//! against the real server, and the generator's own correctness figures must be clean
//! (every message received exactly once, no failed request, no stream lost). Timing is
//! not checked: CI machines vary too much.

use std::time::Duration;

use serde_json::Value;
use tests::{ServerProcess, within};

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
    let output = within(
        Duration::from_secs(60),
        "chat-load finishes",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
            .args(args)
            .args(["--url", &server.url, "--server-pid", &pid, "--json"])
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
