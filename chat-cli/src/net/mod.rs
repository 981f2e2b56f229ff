//! The network side: an rmcp client to the chat server, run as one tokio task that talks
//! to the app only through [`Action`] and [`NetEvent`] channels.
//!
//! Events arrive two ways and are merged: pushed notifications (fast) and a background
//! `wait_for_events` long poll (reliable, and it acknowledges what was seen). A dropped
//! connection is re-established and the identity resumed with its token, which is also
//! saved in the state file for the next run.

pub mod client;
pub mod sequencer;
pub mod tools;
mod worker;

use std::time::Duration;

use tokio::sync::mpsc;

pub use self::client::Endpoint;
pub use self::tools::Identify;
use crate::app::{Action, NetEvent};
use crate::state::Store;

/// Everything the network task needs.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The MCP endpoint URL.
    pub url: String,
    /// Bearer token, if the server needs one.
    pub auth_token: Option<String>,
    /// Who to be.
    pub identify: Identify,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Bound on ordinary tool calls.
    pub call_timeout: Duration,
    /// How long each `wait_for_events` waits on the server.
    pub poll_wait_secs: u64,
    /// Where resume tokens are kept between runs; `Err` says why there is no such place.
    pub state: Result<Store, String>,
}

/// The app's ends of the channels to the network task.
pub struct NetHandle {
    /// Requests for the server.
    pub actions: mpsc::UnboundedSender<Action>,
    /// What happened.
    pub events: mpsc::UnboundedReceiver<NetEvent>,
}

/// Starts the network task on the current tokio runtime. It connects at once; the first
/// event is `Joined` or `Fatal`.
pub fn spawn(config: NetConfig) -> Result<NetHandle, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .connect_timeout(config.connect_timeout)
        .build()
        .map_err(|e| format!("cannot set up HTTP: {e}"))?;
    let endpoint = Endpoint {
        url: config.url,
        auth_token: config.auth_token,
        http,
        connect_timeout: config.connect_timeout,
        call_timeout: config.call_timeout,
    };
    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let worker = worker::Worker::new(
        endpoint,
        config.identify,
        config.poll_wait_secs,
        config.state,
        action_rx,
        event_tx,
    );
    tokio::spawn(worker.run());
    Ok(NetHandle { actions: action_tx, events: event_rx })
}
