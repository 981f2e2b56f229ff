//! The bridge's main loop: reads host lines, dispatches them, and shuts down
//! cleanly. Forwarding lives in [`crate::forward`], the GET stream in
//! [`crate::listen`], session renewal in [`crate::renew`].
//!
//! Concurrency model: every host message is forwarded in its own task, so a
//! tool call that blocks for minutes never delays other calls, pings or
//! cancellations. Only the handshake is sequential: `initialize` must have
//! produced a session id before anything else can be sent in that session,
//! and `notifications/initialized` must reach the server before other
//! requests (MCP lifecycle rules).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Config;
use crate::dedupe::RecentSet;
use crate::forward::Tracker;
use crate::jsonrpc::{self, Id, Message};
use crate::stdio::{self, LineReader, Outbound};
use crate::upstream::Upstream;

/// After stdin closes, how long in-flight requests may still finish (their
/// responses are written if the host still reads stdout).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Bound on the last steps of shutdown (task teardown, stdout flush).
const TEARDOWN: Duration = Duration::from_secs(1);
/// How many cancelled request ids are remembered.
const CANCELLED_MEMORY: usize = 1024;

/// State shared by all tasks of one bridge process.
#[derive(Debug)]
pub struct Bridge {
    pub upstream: Upstream,
    pub out: Outbound,
    /// Cancelled when the bridge is shutting down (stdin EOF, signal, or
    /// stdout closed).
    pub shutdown: CancellationToken,
    pub inflight: InFlight,
    /// Ids (as JSON text) the host cancelled with `notifications/cancelled`;
    /// no transport error is reported for them.
    cancelled: Mutex<RecentSet<String>>,
    /// Counter for the ids of replayed `initialize` requests.
    pub renewals: AtomicU64,
}

impl Bridge {
    pub fn url(&self) -> &str {
        self.upstream.url().as_str()
    }

    pub fn is_cancelled(&self, id: &Id) -> bool {
        self.cancelled.lock().map(|c| c.contains(&id.value().to_string())).unwrap_or(false)
    }

    /// Writes `msg` to the host (stdout).
    pub async fn emit(&self, msg: Message) {
        if !self.out.send(msg).await {
            tracing::debug!("stdout is closed; message dropped");
        }
    }

    /// Handles one line from the host.
    async fn handle_line(self: &Arc<Self>, line: Vec<u8>, tasks: &mut JoinSet<()>) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let parsed = String::from_utf8(line)
            .map_err(|e| e.to_string())
            .and_then(|text| Message::parse(&text).map_err(|e| e.to_string()));
        let msg = match parsed {
            Ok(msg) => msg,
            Err(details) => {
                tracing::warn!("host sent a line that is not JSON: {details}");
                self.emit(jsonrpc::error_reply(
                    None,
                    jsonrpc::PARSE_ERROR,
                    "Parse error",
                    Some(json!({ "details": details })),
                ))
                .await;
                return;
            }
        };
        let valid = match msg.value() {
            Value::Object(_) => true,
            Value::Array(items) => !items.is_empty(),
            _ => false,
        };
        if !valid {
            tracing::warn!("host sent JSON that is not a JSON-RPC message: {}", msg.raw());
            self.emit(jsonrpc::error_reply(
                None,
                jsonrpc::INVALID_REQUEST,
                "Invalid Request",
                Some(json!({ "details": "expected a JSON-RPC object or a non-empty batch" })),
            ))
            .await;
            return;
        }
        if let Some(id) = msg.cancelled_request_id()
            && let Ok(mut cancelled) = self.cancelled.lock()
        {
            cancelled.insert(id.to_string());
        }

        let method = msg.method().map(str::to_owned);
        match method.as_deref() {
            Some("initialize") if msg.is_request() => self.initialize(msg).await,
            Some("notifications/initialized") if msg.is_notification() => {
                // Awaited: the server must see it before the host's next requests.
                let tracker = Tracker::new(&msg, self.inflight.enter());
                let bridge = Arc::clone(self);
                bridge.forward(msg.clone(), tracker).await;
                self.upstream.mark_ready(msg);
            }
            _ => {
                let tracker = Tracker::new(&msg, self.inflight.enter());
                tasks.spawn(Arc::clone(self).forward(msg, tracker));
            }
        }
    }

    /// Forwards the host's `initialize` and waits until its response has been
    /// delivered (so the session id is known), or the attempt failed.
    async fn initialize(self: &Arc<Self>, msg: Message) {
        let (done_tx, done_rx) = oneshot::channel();
        let tracker =
            Tracker::new(&msg, self.inflight.enter()).initializing(msg.clone()).notify_when_done(done_tx);
        let forward = tokio::spawn(Arc::clone(self).forward(msg, tracker));
        let limit = self.upstream.timeout();
        tokio::select! {
            _ = self.shutdown.cancelled() => forward.abort(),
            _ = async {
                match limit {
                    Some(limit) => { let _ = tokio::time::timeout(limit, done_rx).await; }
                    None => { let _ = done_rx.await; }
                }
            } => {}
        }
    }
}

/// Counts host messages still waiting for an answer, so shutdown can wait
/// for them (bounded) before closing the session.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<(AtomicUsize, Notify)>);

/// Decrements the [`InFlight`] count when dropped.
#[derive(Debug)]
pub struct InFlightGuard(InFlight);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Resolves when nothing is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.0.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.0.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.0.0.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.0.1.notify_waiters();
        }
    }
}

/// Runs the bridge on the process's stdin/stdout until the host goes away.
pub async fn run(config: Config) -> std::process::ExitCode {
    let upstream = match Upstream::new(&config) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("cannot create the HTTP client: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let shutdown = CancellationToken::new();
    let (out, writer) = stdio::spawn_writer(tokio::io::stdout(), shutdown.clone());
    let bridge = Arc::new(Bridge {
        upstream,
        out,
        shutdown: shutdown.clone(),
        inflight: InFlight::default(),
        cancelled: Mutex::new(RecentSet::new(CANCELLED_MEMORY)),
        renewals: AtomicU64::new(0),
    });
    tracing::info!(url = bridge.url(), "bridge started");

    let listener = tokio::spawn(crate::listen::run(Arc::clone(&bridge)));
    let mut tasks = JoinSet::new();
    let mut reader = LineReader::new(tokio::io::stdin());
    let mut signals = Signals::new();
    // Only after stdin EOF is there a reason to linger: the host may still
    // read the answers to its last requests (e.g. `... | bridge`). After a
    // signal or a closed stdout nobody is waiting for them.
    let mut linger = false;
    loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = signals.recv() => {
                tracing::info!("terminating on signal");
                break;
            }
            line = reader.next_line() => match line {
                Ok(Some(line)) => bridge.handle_line(line, &mut tasks).await,
                Ok(None) => {
                    tracing::info!("stdin closed; shutting down");
                    linger = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!("cannot read stdin ({e}); shutting down");
                    break;
                }
            },
        }
    }

    // Let requests that are still running finish, then stop everything and
    // end the session so the server frees it now rather than at its timeout.
    if linger {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, bridge.inflight.idle()).await;
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(TEARDOWN, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    listener.abort();
    bridge.upstream.delete().await;
    drop(bridge);
    let _ = tokio::time::timeout(TEARDOWN, writer).await;
    std::process::ExitCode::SUCCESS
}

/// SIGTERM / SIGINT (Ctrl-C): hosts usually stop servers with a signal
/// rather than by closing stdin; both paths end the session with DELETE.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let term = async {
                match self.term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {}
                r = tokio::signal::ctrl_c() => if r.is_err() { std::future::pending::<()>().await },
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
