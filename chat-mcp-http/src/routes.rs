//! `GET /healthz` and `GET /metrics`.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::json;

use crate::state::hub::Hub;

fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Health: 200 with version and counts, or 503 while shutting down.
pub async fn healthz(State(hub): State<Arc<Hub>>) -> Response {
    let gauges = hub.gauges();
    let stopping = hub.is_shutting_down();
    let body = json!({
        "status": if stopping { "shutting_down" } else { "ok" },
        "name": "mcp-chat",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol_version": crate::handler::PROTOCOL_VERSION.as_str(),
        "uptime_secs": started().elapsed().as_secs(),
        "counts": gauges,
        "totals": hub.metrics.totals(),
    });
    let mut body = body;
    if let Some(node) = hub.node() {
        // Several nodes on one shared log: which one this is, and which it counts as alive.
        let live: Vec<String> =
            hub.read(|chat| chat.live_nodes()).iter().map(|n| format!("{n:016x}")).collect();
        body["node"] = json!({ "id": format!("{node:016x}"), "live_nodes": live });
    }
    let status = if stopping { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(body)).into_response()
}

/// Prometheus text exposition.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let text = hub.metrics.render(hub.gauges());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Call once at start-up so `uptime_secs` counts from then.
pub fn mark_started() {
    let _ = started();
}
