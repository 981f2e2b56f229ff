//! The command line: `--help` documents every setting, bad values are refused.
//!
//! Also makes `cargo test --workspace` build the `chat-mcp-http` binary, which the
//! end-to-end tests in `tests/` start.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chat-mcp-http"))
        .args(args)
        .env_remove("MCP_SERVER_PORT")
        .env_remove("MCP_SERVER_HOST")
        .output()
        .expect("run chat-mcp-http")
}

#[test]
fn help_lists_every_flag_with_its_env_var() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--auth-token",
        "--allowed-host",
        "--allowed-origin",
        "--log-level",
        "--session-idle-timeout",
        "--keepalive-ping",
        "--stream-grace",
        "--reconnect-grace",
        "--message-ttl",
        "--interest-timeout",
        "--rematch-cooldown",
        "--typing-timeout",
        "--history-retention",
        "--offline-retention",
        "--rate-messages",
        "--rate-window",
        "--max-message-bytes",
        "--mailbox-capacity",
        "--event-buffer",
        "--queue-capacity",
        "--max-participants",
        "--max-fetch",
        "--wait-default",
        "--wait-max",
        "--send-wait-default",
        "--send-wait-max",
        "--progress-interval",
        "--max-sessions",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
    for env in
        ["MCP_SERVER_HOST", "MCP_SERVER_PORT", "LOG_LEVEL", "MCP_CHAT_AUTH_TOKEN", "MCP_CHAT_RECONNECT_GRACE"]
    {
        assert!(help.contains(env), "--help does not mention {env}");
    }
    assert!(help.contains("[default: 8123]"), "port default shown");
}

#[test]
fn version_is_printed() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_values_are_refused_with_a_message() {
    let out = run(&["--reconnect-grace", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
    let out = run(&["--port", "99999"]);
    assert!(!out.status.success());
}

#[test]
fn a_port_in_use_is_named_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = run(&["--port", &port]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}"))
            && err.contains("already in use")
            && err.contains("--port"),
        "{err}"
    );
}

#[test]
fn listening_beyond_loopback_without_a_token_warns_loudly() {
    use chat_mcp_http::cli::Cli;
    use clap::Parser;
    let config = |args: &[&str]| {
        let mut all = vec!["chat-mcp-http"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("flags").into_config().expect("config")
    };
    assert_eq!(chat_mcp_http::exposure_warning(&config(&[])), None, "loopback is fine");
    let open = chat_mcp_http::exposure_warning(&config(&["--host", "0.0.0.0"])).expect("a warning");
    assert!(open.contains("--auth-token") && open.contains("--allowed-host"), "{open}");
    let half = chat_mcp_http::exposure_warning(&config(&["--host", "0.0.0.0", "--auth-token", "s3cret"]))
        .expect("a warning");
    assert!(!half.contains("--auth-token") && half.contains("--allowed-host"), "{half}");
    let safe = ["--host", "0.0.0.0", "--auth-token", "s3cret", "--allowed-host", "chat.example.com"];
    assert_eq!(chat_mcp_http::exposure_warning(&config(&safe)), None);
}
