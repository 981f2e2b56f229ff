//! `chat-mcp-stdio-bridge`: lets a desktop MCP host that only speaks stdio
//! (newline-delimited JSON-RPC on a child process) use a Streamable HTTP MCP
//! server, such as the mcp-chat server.
//!
//! It is a raw pass-through: messages are forwarded as the exact text
//! received, so it works with any server and any protocol revision, and
//! unknown fields, unusual ids and custom notifications survive unchanged.
//!
//! Module map:
//! * [`cli`], [`headers`]: configuration (flags, env vars, `${VAR}`);
//! * [`stdio`]: host side (stdin reader, single stdout writer);
//! * [`upstream`]: HTTP side (one pooled client, session headers, statuses);
//! * [`sse`]: SSE parsing with idle timeout, stream cursors;
//! * [`bridge`]: main loop and shutdown; [`forward`]: host -> server;
//!   [`listen`]: the GET stream; [`renew`]: re-initialize after a 404;
//! * [`jsonrpc`], [`dedupe`]: lossless message view and duplicate filters.

mod bridge;
mod cli;
mod dedupe;
mod forward;
mod headers;
mod jsonrpc;
mod listen;
mod renew;
mod sse;
mod stdio;
mod upstream;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    init_tracing(&args.log_level);
    let config = match args.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat-mcp-stdio-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-mcp-stdio-bridge: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(bridge::run(config));
    // tokio's stdin reader sits in a blocking thread that may never return
    // (e.g. after SIGTERM); don't let it hold the process open.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Logs go to stderr only: stdout is the JSON-RPC channel. A bare level
/// applies to the bridge (dependencies stay at `warn` so `debug` is
/// readable); anything else is used as a full tracing filter.
fn init_tracing(level: &str) {
    let level = level.trim();
    let directive = if level.contains(['=', ',']) || matches!(level, "off" | "error" | "warn") {
        level.to_string()
    } else {
        format!("warn,chat_mcp_stdio_bridge={level}")
    };
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|e| {
        eprintln!("chat-mcp-stdio-bridge: invalid --log-level {level:?} ({e}); using warn");
        EnvFilter::new("warn")
    });
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
}
