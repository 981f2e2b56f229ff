//! Wiring: the axum app around rmcp's `StreamableHttpService`, the background tasks, and
//! graceful shutdown. Connections are accepted and timed out by `edge.rs`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use http::StatusCode;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthState, require_bearer};
use crate::config::ServerConfig;
use crate::direct::Direct;
use crate::edge;
use crate::handler::{ChatServer, Gateway};
use crate::jsonrpc::{PostState, validate_post};
use crate::metrics::Metrics;
use crate::origin::{OriginGuard, check_origin, origins_for_rmcp};
use crate::routes;
use crate::session::{self, Sessions, admit_new_sessions, serve_streams};
use crate::state::durable;
use crate::state::hub::Hub;
use crate::tasks::Tasks;

/// The MCP endpoint, the one path that speaks Streamable HTTP.
pub const MCP_PATH: &str = "/mcp";

/// How long shutdown waits for open connections after closing every session.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// A running server.
pub struct Server {
    addr: SocketAddr,
    hub: Arc<Hub>,
    /// Cancelling it closes every rmcp session and SSE stream.
    sessions: CancellationToken,
    /// Cancelling it stops accepting connections.
    stop_accepting: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

/// Builds the axum app: `/mcp`, `/healthz`, `/metrics`, behind the Host/Origin check and
/// (when configured) the bearer token.
fn build_router(hub: &Arc<Hub>, sessions: &CancellationToken) -> Router {
    let config = &hub.config;
    // rmcp runs statelessly: sessions, their streams and their ends are `session.rs`'s.
    // What it still answers (`tools/list`, `ping`, resources) sends nothing before the
    // result, so it answers with one JSON message: its SSE answers had no event ids.
    let mut mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(Some(config.sse_keep_alive))
        .with_sse_retry(Some(config.sse_retry))
        .with_max_request_body_bytes(config.max_request_bytes)
        .with_cancellation_token(sessions.clone());
    mcp_config = if config.allowed_hosts.is_empty() {
        mcp_config.disable_allowed_hosts()
    } else {
        mcp_config.with_allowed_hosts(config.allowed_hosts.clone())
    };
    mcp_config = mcp_config.with_allowed_origins(origins_for_rmcp(&config.allowed_origins));

    let tools = ChatServer::router();
    let layer = Sessions::new(hub.clone(), Direct::new(hub.clone(), tools.clone()));
    let gateway_hub = hub.clone();
    let tasks = Tasks::new(config);
    let service = StreamableHttpService::new(
        move || Ok(Gateway::new(gateway_hub.clone(), tools.clone(), tasks.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );
    tokio::spawn(session::keepalive(hub.clone()));

    // The session layer runs as route layers of `/mcp` alone: an unmatched path falls
    // through to the router's plain 404 and never reaches `initialize` or the GET stream
    // (as a `layer` on a nested service it wrapped the fallback too, so every path was an
    // MCP endpoint). `route_service` matches `/mcp` exactly, not `/mcp/...`.
    let mcp = Router::new()
        .route_service(MCP_PATH, service.clone())
        .route_layer(from_fn_with_state(
            PostState {
                limit: config.max_request_bytes,
                body_timeout: config.body_timeout,
                sessions: layer.clone(),
                rmcp: service.clone(),
            },
            validate_post,
        ))
        .route_layer(from_fn_with_state(layer, serve_streams))
        .route_layer(from_fn_with_state(hub.clone(), admit_new_sessions));
    let mut app = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .with_state(hub.clone())
        .merge(mcp)
        .fallback(not_found);
    if let Some(token) = &config.auth_token {
        app = app.layer(from_fn_with_state(AuthState::new(token, hub.metrics.clone()), require_bearer));
    }
    let guard = OriginGuard::new(&config.allowed_hosts, &config.allowed_origins, hub.metrics.clone());
    app.layer(from_fn_with_state(guard, check_origin))
}

/// Every path but `/mcp`, `/healthz` and `/metrics`: `404`, naming the endpoint, so a
/// client configured with a wrong URL (`/`, `/sse`, `/mcp/`) is told where to go.
async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "Not Found: the MCP endpoint of this server is /mcp\n")
}

impl Server {
    /// Binds `config.listen` and starts serving in the background.
    pub async fn start(config: ServerConfig) -> io::Result<Server> {
        let socket = if config.listen.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(config.listen)?;
        let listener = socket.listen(config.listen_backlog)?;
        Self::start_on(listener, config)
    }

    /// Starts serving on an already bound listener.
    pub fn start_on(listener: TcpListener, config: ServerConfig) -> io::Result<Server> {
        routes::mark_started();
        let addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::default());
        let config = Arc::new(config);
        let hub = if config.store.is_durable() {
            let (hub, started) =
                durable::open(config.clone(), metrics, CancellationToken::new()).map_err(io::Error::other)?;
            tracing::info!(
                store = %config.store,
                fresh = started.fresh,
                snapshot = started.snapshot,
                replayed = started.replayed,
                position = started.position,
                sessions = started.sessions,
                took_ms = u64::try_from(started.took.as_millis()).unwrap_or(u64::MAX),
                restore_ms = u64::try_from(started.restore.as_millis()).unwrap_or(u64::MAX),
                "chat restored"
            );
            hub
        } else {
            Hub::new(config, metrics, CancellationToken::new()).map_err(io::Error::other)?
        };
        let sessions = CancellationToken::new();
        let stop_accepting = CancellationToken::new();
        let app = build_router(&hub, &sessions);
        tokio::spawn(hub.clone().run_timer());
        let limits = edge::EdgeLimits::of(&hub.config);
        let task =
            tokio::spawn(edge::serve(listener, app, limits, hub.metrics.clone(), stop_accepting.clone()));
        tracing::debug!(%addr, "listening");
        Ok(Server { addr, hub, sessions, stop_accepting, task })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for in-process inspection.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Graceful stop: stop accepting, end every room (partners are told `shutdown`),
    /// give queued notifications time to reach clients, close every session, then wait
    /// for connections to drain. With a durable store rooms and sessions are kept
    /// instead (nothing more is logged about them), and a last snapshot is written: the
    /// next start carries on where this one stopped.
    pub async fn shutdown(self) -> io::Result<()> {
        if self.hub.is_durable() {
            tracing::info!("shutting down: sessions and rooms are kept in the store for the next start");
        } else {
            tracing::info!("shutting down: notifying connected participants");
        }
        self.stop_accepting.cancel();
        self.hub.begin_shutdown().await;
        self.hub.flush(self.hub.config.shutdown_flush).await;
        // Flushed means taken by the streams; give them a moment to write the
        // last frames to the sockets before the streams are closed.
        tokio::time::sleep(Duration::from_millis(100).min(self.hub.config.shutdown_flush)).await;
        for slot in self.hub.sessions() {
            self.hub.end_session(&slot, chat_core::SessionEnd::Lost).await;
        }
        self.sessions.cancel();
        let mut task = self.task;
        let drained = match tokio::time::timeout(DRAIN_LIMIT, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(io::Error::other(join)),
            Err(_) => {
                tracing::warn!("connections did not drain in time; closing them");
                task.abort();
                Ok(())
            }
        };
        if let Some(log) = self.hub.log() {
            log.stop().await;
        }
        drained
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(mut self) -> io::Result<()> {
        let ended = tokio::select! {
            () = shutdown_signal() => None,
            result = &mut self.task => Some(result),
        };
        match ended {
            None => self.shutdown().await,
            Some(Ok(result)) => result,
            Some(Err(join)) => Err(io::Error::other(join)),
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
