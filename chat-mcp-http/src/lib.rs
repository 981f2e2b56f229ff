//! # chat-mcp-http
//!
//! The mcp-chat server over MCP Streamable HTTP: a thin adapter that feeds MCP tool calls
//! to [`chat_core::Chat`] and pushes its events to clients as notifications on their
//! session's SSE stream.
//!
//! Layout, one job per module:
//! - [`cli`] / [`config`]: flags, environment variables and their defaults.
//! - [`app`]: the axum app, background tasks and graceful shutdown.
//! - [`edge`]: the accept loop: connection cap, header, idle and early size limits.
//! - [`auth`], [`origin`], [`jsonrpc`]: bearer token, Host/Origin checks and JSON-RPC
//!   errors for malformed bodies, as axum middleware.
//! - [`session`]: the session layer (`initialize`, GET stream, DELETE, notifications),
//!   session ends (lost stream, idle) and keep-alive pings; rmcp serves the rest
//!   statelessly.
//! - [`direct`]: tool calls answered in the HTTP handler.
//! - [`batch`]: JSON-RPC batches, for sessions on protocol version 2025-03-26.
//! - [`handler`]: one session's handler (tool dispatch, resources) and the gateway rmcp runs;
//!   [`arguments`] checks tool arguments against the input schemas first; [`logging`]:
//!   `logging/setLevel` and `notifications/message`.
//! - [`tools`], [`params`], [`render`], [`resources`], [`output`]: the MCP surface
//!   ([`output`]: the tools' output schemas).
//! - [`state`]: the core's owner ([`state::hub::Hub`]), per-session slots, the pushers,
//!   and the journal that logs every input before it is applied ([`state::journal`]).
//! - [`store`]: where the log and snapshots are kept (`--store memory | sqlite:PATH`).
//! - [`tasks`]: `send_message_and_wait` as a task (the tasks extension, session-less).
//! - [`metrics`], [`routes`]: `/metrics` and `/healthz`.
//!
//! Run [`serve`] (what the binary does) or [`app::Server::start`] to embed it.

pub mod app;
pub mod arguments;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod config;
pub mod direct;
pub mod edge;
pub mod era;
pub mod handler;
pub mod jsonrpc;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod output;
pub mod params;
pub mod render;
pub mod resources;
pub mod routes;
pub mod session;
pub mod state;
pub mod store;
pub mod tasks;
pub mod tools;

pub use app::Server;
pub use config::ServerConfig;

/// Serves `config` until SIGINT/SIGTERM, then shuts down gracefully. Prints the MCP URL
/// on stdout once listening (scripts and tests read it, notably with `--port 0`).
pub async fn serve(config: ServerConfig) -> std::io::Result<()> {
    let listen = config.listen;
    if let Some(warning) = exposure_warning(&config) {
        tracing::warn!("{warning}");
        eprintln!("WARNING: {warning}");
    }
    let server = Server::start(config).await.map_err(|error| match error.kind() {
        std::io::ErrorKind::AddrInUse => std::io::Error::new(
            error.kind(),
            format!(
                "cannot listen on {listen}: the address is already in use (another mcp-chat, or another program, \
is listening there); stop it, or choose another port with --port (0 picks a free one)"
            ),
        ),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::AddrNotAvailable => {
            std::io::Error::new(error.kind(), format!("cannot listen on {listen}: {error}"))
        }
        _ => error,
    })?;
    println!("mcp-chat listening on http://{}{}", server.local_addr(), app::MCP_PATH);
    let result = server.run_until_signal().await;
    println!("mcp-chat stopped");
    result
}

/// A warning for a server that listens beyond loopback without the settings that make
/// that safe: anyone who can reach it could chat as anyone's partner and read the inbox
/// of whatever identity they bind.
pub fn exposure_warning(config: &ServerConfig) -> Option<String> {
    if config.listen.ip().is_loopback() {
        return None;
    }
    let mut missing = Vec::new();
    if config.auth_token.is_none() {
        missing.push("--auth-token (every client must send it as a bearer token)");
    }
    let loopback_only =
        config.allowed_hosts.iter().all(|h| ServerConfig::DEFAULT_ALLOWED_HOSTS.contains(&h.as_str()));
    if config.allowed_hosts.is_empty() || loopback_only {
        missing.push("--allowed-host NAME (the host name clients use in the URL)");
    }
    (!missing.is_empty()).then(|| {
        format!(
            "listening on {} (beyond this machine) without {}; see docs/OPERATIONS.md, \"Authentication and network exposure\"",
            config.listen,
            missing.join(" and ")
        )
    })
}
