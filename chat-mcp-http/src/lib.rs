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
//! - [`state`]: the core's owner ([`state::hub::Hub`]), per-session slots, the pushers.
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
pub mod tools;

pub use app::Server;
pub use config::ServerConfig;

/// Serves `config` until SIGINT/SIGTERM, then shuts down gracefully. Prints the MCP URL
/// on stdout once listening (scripts and tests read it, notably with `--port 0`).
pub async fn serve(config: ServerConfig) -> std::io::Result<()> {
    let server = Server::start(config).await?;
    println!("mcp-chat listening on http://{}{}", server.local_addr(), app::MCP_PATH);
    server.run_until_signal().await
}
