//! `chat-mcp-http`: the mcp-chat server over Streamable HTTP. See `--help`.

use std::process::ExitCode;

use chat_mcp_http::cli::Cli;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The log directives for rmcp under a plain `--log-level`.
const RMCP_LOG: &str = "rmcp=warn,rmcp::service=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // RUST_LOG wins when set; otherwise --log-level / LOG_LEVEL. A plain level keeps rmcp
    // itself at `warn` (at `info` it logs every client notification with its contents),
    // and its service loop quiet: what it logs as errors are answers it could not send
    // because the client hung up (a session-less long poll or listen stream closed), which
    // is a client's right, not a fault.
    let level = cli.log_level.trim().to_ascii_lowercase();
    let directive = if level.contains(['=', ',']) { level } else { format!("{level},{RMCP_LOG}") };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&directive))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{RMCP_LOG}")));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    let config = match cli.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chat_mcp_http::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
