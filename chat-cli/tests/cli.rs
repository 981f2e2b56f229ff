//! The command line: `--help` documents the flags, bad usage is refused, an unreachable
//! server is a clear error and not a hang.
//!
//! Also makes `cargo test --workspace` build the `chat-cli` binary, which the end-to-end
//! tests in `tests/` start.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    // Never the real home's state file.
    let state = tempfile::tempdir().expect("a temporary state directory");
    Command::new(env!("CARGO_BIN_EXE_chat-cli"))
        .args(args)
        .env_remove("MCP_CHAT_URL")
        .env_remove("MCP_CHAT_AUTH_TOKEN")
        .env("MCP_CHAT_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .output()
        .expect("run chat-cli")
}

#[test]
fn help_lists_the_flags_and_modes() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--server",
        "--name",
        "--interests",
        "--auth-token",
        "--plain",
        "--json",
        "--connect-timeout",
        "roulette",
        "dm",
        "http://127.0.0.1:8123/mcp",
        "MCP_CHAT_AUTH_TOKEN",
        "--state-dir",
        "MCP_CHAT_STATE_DIR",
        "--forget",
    ] {
        assert!(help.contains(needle), "--help does not mention {needle}:\n{help}");
    }
    let dm = run(&["dm", "--help"]);
    assert!(dm.status.success());
    let dm = String::from_utf8_lossy(&dm.stdout);
    assert!(dm.contains("--as <CLIENT_ID>") && dm.contains("--to <CLIENT_ID>"), "{dm}");
}

#[test]
fn dm_without_an_identity_is_a_usage_error() {
    let out = run(&["dm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--as"));
}

#[test]
fn an_unreachable_server_fails_fast_with_a_clear_message() {
    // Bind and drop a listener: the port is (almost certainly) closed afterwards.
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let started = Instant::now();
    let out = run(&["--plain", "--server", &url]);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot connect to {url}")), "{stderr}");
    assert!(stderr.contains("is the server running"), "{stderr}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts connections (the backlog does) but never answers a byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let url = format!("http://{}/mcp", listener.local_addr().expect("address"));
    let started = Instant::now();
    let out = run(&["--plain", "--json", "--connect-timeout", "2", "--server", &url]);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let error = stdout.lines().find(|l| l.contains(r#""type":"error""#)).expect("an error line");
    assert!(error.contains("no answer within 2s"), "{error}");
    drop(listener);
}
