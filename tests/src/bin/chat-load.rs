//! `chat-load`: the load generator for mcp-chat.
//!
//! It speaks MCP Streamable HTTP directly (pooled connections, `sse-stream` for SSE) so it
//! stays cheap next to the server on the same machine, and it measures a bare axum relay
//! (the transport floor, this binary's hidden `floor-server` command) in the same run, so
//! every figure can be read against what HTTP + SSE cost here. Scenarios: `relay`
//! (closed loop, or open loop with `--rate`), `tools-only`, `dm`, `connect`, `idle`.
//! See `chat-load --help` and docs/PERFORMANCE.md.

#[path = "chat_load/cli.rs"]
mod cli;
#[path = "chat_load/clock.rs"]
mod clock;
#[path = "chat_load/connect.rs"]
mod connect;
#[path = "chat_load/error.rs"]
mod error;
#[path = "chat_load/events.rs"]
mod events;
#[path = "chat_load/fleet.rs"]
mod fleet;
#[path = "chat_load/floor.rs"]
mod floor;
#[path = "chat_load/http.rs"]
mod http;
#[path = "chat_load/idle.rs"]
mod idle;
#[path = "chat_load/jitter.rs"]
mod jitter;
#[path = "chat_load/messaging.rs"]
mod messaging;
#[path = "chat_load/open_loop.rs"]
mod open_loop;
#[path = "chat_load/pairing.rs"]
mod pairing;
#[path = "chat_load/payload.rs"]
mod payload;
#[path = "chat_load/procfs.rs"]
mod procfs;
#[path = "chat_load/receiver.rs"]
mod receiver;
#[path = "chat_load/report.rs"]
mod report;
#[path = "chat_load/runner.rs"]
mod runner;
#[path = "chat_load/sender.rs"]
mod sender;
#[path = "chat_load/stats.rs"]
mod stats;
#[path = "chat_load/target.rs"]
mod target;
#[path = "chat_load/tracker.rs"]
mod tracker;
#[path = "chat_load/wire.rs"]
mod wire;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Scenario};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match &cli.scenario {
        Scenario::FloorServer(args) => runtime.block_on(floor::serve(args.clone())).map(|()| true),
        _ => runtime.block_on(runner::run(&cli)),
    };
    // Do not wait for tasks still holding connections (held streams, pending acks).
    runtime.shutdown_background();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
