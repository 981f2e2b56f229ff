//! Command-line behaviour of the real binary. (Also makes `cargo test
//! --workspace` build the binary, which the end-to-end tests in the `tests`
//! package spawn.)

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chat-mcp-stdio-bridge");

/// Runs the binary with `stdin` as input; fails the test if it runs >10 s.
fn run(args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in
        ["MCP_CHAT_URL", "MCP_CHAT_AUTH_TOKEN", "MCP_CHAT_HEADERS", "MCP_CHAT_TIMEOUT", "MCP_CHAT_LOG_LEVEL"]
    {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied());
    let mut child = cmd.spawn().expect("spawn bridge");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("bridge did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn help_lists_every_flag_and_env_var() {
    let out = run(&["--help"], &[], "");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--url",
        "--auth-token",
        "--header",
        "--timeout",
        "--log-level",
        "MCP_CHAT_URL",
        "MCP_CHAT_AUTH_TOKEN",
        "MCP_CHAT_HEADERS",
        "MCP_CHAT_TIMEOUT",
        "MCP_CHAT_LOG_LEVEL",
        "http://127.0.0.1:8123/mcp",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn missing_env_var_in_header_is_a_startup_error() {
    let out = run(&["--header", "X-Key: ${BRIDGE_CLI_TEST_UNSET_VAR}"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BRIDGE_CLI_TEST_UNSET_VAR"), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout must stay clean");
}

#[test]
fn malformed_header_bad_scheme_and_missing_ca_file_are_rejected() {
    let out = run(&["--header", "no colon here"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Name: value"));

    let out = run(&[], &[("MCP_CHAT_URL", "ftp://example.invalid/mcp")], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("https://"));

    let out = run(&["--ca-cert", "/nonexistent/ca.pem"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-cert"));
}

#[test]
fn empty_stdin_exits_zero_with_clean_stdout() {
    // Port 9 (discard) is closed on test machines: nothing is contacted anyway
    // because the host sends nothing.
    let out = run(&["--url", "http://127.0.0.1:9/mcp"], &[], "");
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    assert!(out.stdout.is_empty());
}

#[test]
fn unreachable_server_and_bad_json_get_error_replies() {
    let input = "this is not json\n{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ping\"}\n";
    let out = run(&["--url", "http://127.0.0.1:9/mcp", "--log-level", "off"], &[], input);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("stdout line is JSON")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["error"]["code"], -32700);
    assert_eq!(lines[0]["id"], serde_json::Value::Null);
    assert_eq!(lines[1]["id"], "a");
    assert_eq!(lines[1]["error"]["code"], -32000);
    let message = lines[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("127.0.0.1:9"), "{message}");
    assert!(out.stderr.is_empty(), "--log-level off must silence stderr");
}
