//! `chat-cli`: chat from the terminal through an mcp-chat server. See `--help`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use chat_cli::cli::Cli;
use chat_cli::{clock, plain, tui};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.forget {
        return match cli.forget_saved() {
            Ok(done) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("chat-cli: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let (settings, net, target) = cli.configure(clock::local_offset_secs());
    let plain = cli.wants_plain(std::io::stdout().is_terminal());
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chat-cli: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        if plain {
            plain::run(settings, net, target, cli.json).await
        } else {
            tui::run(settings, net, target, cli.notify).await
        }
    });
    // Do not wait for stragglers (a blocked stdin read, a DELETE to a dead server).
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}
