//! The accept loop: every TCP connection the server takes, and the limits that keep a
//! client from holding connections it does not use.
//!
//! `axum::serve` offers none of these knobs, so connections are served here with hyper's
//! HTTP/1.1 connection builder and hyper-util's graceful shutdown, as `axum::serve` does
//! inside, plus:
//! - **A cap on open connections** (`--max-connections`): one beyond it is answered `503`
//!   and closed at once, without awaiting anything, so the loop goes on accepting and the
//!   process never runs out of file descriptors (which would lock everyone out).
//! - **A header read timeout** (`--header-timeout`): hyper's own. Its clock starts when
//!   the connection is ready for a request head, so a client that connects and sends
//!   nothing, or trickles header bytes, is closed when it runs out. This has to happen
//!   here, before any middleware: `--auth-token`'s `401` needs complete headers.
//! - **An idle keep-alive timeout** (`--idle-connection-timeout`): hyper measures the wait
//!   for every later request head with the same clock, from the end of the previous
//!   response; [`HeadTimer`] gives those waits their own duration.
//! - **An early `413`** for a `Content-Length` over `--max-request-bytes`, before the
//!   body is read (the body's own deadline, `--body-timeout`, is `jsonrpc.rs`'s, the one
//!   place a request body is read).
//!
//! A response in progress (an SSE GET stream, a blocking tool call) is not waiting for a
//! request head, so none of these timers run while it lasts.
//!
//! Each request carries its peer address ([`ConnectInfo`]) for the per-address limits,
//! and a [`ConnectionCloser`] with which the session layer can drop the connection of a
//! GET stream whose client stopped answering (see `session.rs`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::rt::{Sleep, Timer};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// What a connection over `--max-connections` is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 41\r\n\r\n\
the server has too many open connections\n";

/// How long the loop pauses after an accept error that is not about one connection
/// (such as running out of file descriptors), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Closes the TCP connection a request came on (see [`serve`]). The session layer uses it
/// to end the GET stream of a client that stopped answering pings: the stream may be
/// stuck behind a full socket, so ending its body would not be enough.
#[derive(Clone, Debug)]
pub struct ConnectionCloser(CancellationToken);

impl ConnectionCloser {
    /// Drops the connection now; its response (if any) ends as if the client had gone.
    pub fn close(&self) {
        self.0.cancel();
    }
}

/// hyper's timer for one connection. hyper arms a deadline each time the connection
/// waits for a request head: first from the moment it is accepted, then from the end of
/// every response. The first wait gets `--header-timeout` (hyper's own arithmetic), every
/// later one `--idle-connection-timeout`, which hyper has no separate setting for.
#[derive(Clone)]
struct HeadTimer {
    idle: Duration,
    first: Arc<AtomicBool>,
}

impl HeadTimer {
    fn new(idle: Duration) -> Self {
        HeadTimer { idle, first: Arc::new(AtomicBool::new(true)) }
    }

    /// The deadline for the wait hyper is arming now, given the one it computed.
    fn deadline(&self, hyper_deadline: Instant) -> Instant {
        if self.first.swap(false, Ordering::AcqRel) { hyper_deadline } else { Instant::now() + self.idle }
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep_until(self.deadline(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        TokioTimer::new().reset(sleep, self.deadline(new_deadline));
    }
}

/// The edge's settings, taken from [`ServerConfig`].
#[derive(Clone, Copy, Debug)]
pub struct EdgeLimits {
    /// `--header-timeout`.
    pub header_timeout: Duration,
    /// `--idle-connection-timeout`.
    pub idle_timeout: Duration,
    /// `--max-connections`.
    pub max_connections: usize,
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
}

impl EdgeLimits {
    /// The edge limits of `config`.
    pub fn of(config: &ServerConfig) -> Self {
        EdgeLimits {
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_connection_timeout,
            max_connections: config.max_connections,
            max_request_bytes: config.max_request_bytes,
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then stops accepting, asks
/// every connection to finish its response in progress and close (hyper's graceful
/// shutdown: idle connections close at once), and returns once all have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let max_connections = connection_budget(limits.max_connections);
    let permits = Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true).header_read_timeout(limits.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.count_rejected("too_many_connections");
            refuse(&stream);
            continue;
        };
        // TCP_NODELAY: an SSE response is written in several small frames; with Nagle's
        // algorithm each tool call would wait ~40 ms for the client's delayed ACK.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let closer = ConnectionCloser(CancellationToken::new());
        let service = EdgeService { router: router.clone(), peer, closer: closer.clone(), limits };
        let mut builder = http.clone();
        builder.timer(HeadTimer::new(limits.idle_timeout));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        metrics.connection(1);
        tokio::spawn(async move {
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        if error.is_timeout() {
                            metrics.count_rejected("header_timeout");
                        }
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                }
                () = closer.0.cancelled() => tracing::debug!(%peer, "connection closed by the server"),
            }
            metrics.connection(-1);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// File descriptors kept for everything but client connections: the listener, the
/// runtime, logs, and an accept that must still succeed in order to refuse a connection.
const RESERVED_FDS: u64 = 64;

/// How many connections the process can really hold, at most `wanted`. The cap only
/// protects the server if a connection beyond it can still be accepted and refused: at
/// the open-file limit `accept` fails and new clients wait in the backlog. So the soft
/// limit is raised to the hard one (as Go's runtime does by itself), and the cap lowered,
/// with a warning, if even that is too small.
fn connection_budget(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return wanted };
        let needed = u64::try_from(wanted).unwrap_or(u64::MAX).saturating_add(RESERVED_FDS);
        let mut soft = soft;
        if soft < needed {
            let raised = needed.min(hard);
            match setrlimit(Resource::RLIMIT_NOFILE, raised, hard) {
                Ok(()) => soft = raised,
                Err(error) => tracing::debug!(%error, "cannot raise the open-file limit"),
            }
        }
        let fits = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
        if fits < wanted {
            tracing::warn!(
                max_connections = wanted,
                open_file_limit = soft,
                "the open-file limit allows only {fits} connections; --max-connections lowered to it \
                 (raise `ulimit -n` to allow more)"
            );
            return fits;
        }
    }
    wanted
}

/// Answers a connection over the cap with a canned `503` (only if the socket takes it
/// without waiting) and closes it.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(REFUSED);
}

/// Accept errors that concern one connection only (it was reset before it was taken).
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// The per-connection service: the request's peer and closer go into its extensions, an
/// oversized `Content-Length` is refused, everything else goes to the router.
#[derive(Clone)]
struct EdgeService {
    router: Router,
    peer: SocketAddr,
    closer: ConnectionCloser,
    limits: EdgeLimits,
}

impl hyper::service::Service<Request<Incoming>> for EdgeService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Self::Error>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        if let Some(length) = content_length(request.headers())
            && length > u64::try_from(self.limits.max_request_bytes).unwrap_or(u64::MAX)
        {
            let refused = payload_too_large(self.limits.max_request_bytes);
            return Box::pin(std::future::ready(Ok(refused)));
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        request.extensions_mut().insert(self.closer.clone());
        let mut router = self.router.clone();
        Box::pin(async move { router.call(request).await })
    }
}

/// The request's `Content-Length`, if it has a valid one.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// `413` for a body over `limit`, closing the connection: the body is never read, so the
/// connection cannot carry another request.
pub fn payload_too_large(limit: usize) -> Response {
    let message = format!("Payload Too Large: request body exceeds {limit} bytes\n");
    closing(StatusCode::PAYLOAD_TOO_LARGE, message)
}

/// A plain-text response with `Connection: close`.
pub fn closing(status: StatusCode, message: String) -> Response {
    let mut response = (status, message).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_head_wait_is_hyper_s_and_later_ones_are_idle_waits() {
        let timer = HeadTimer::new(Duration::from_secs(60));
        let hyper_deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(timer.deadline(hyper_deadline), hyper_deadline);
        let idle = timer.deadline(hyper_deadline);
        assert!(idle >= Instant::now() + Duration::from_secs(59), "a later wait is an idle wait");
    }

    #[test]
    fn reads_content_length() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(content_length(&headers), None);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10000000000"));
        assert_eq!(content_length(&headers), Some(10_000_000_000));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("nope"));
        assert_eq!(content_length(&headers), None);
    }

    #[test]
    fn the_refusal_is_a_complete_response() {
        let text = std::str::from_utf8(REFUSED).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("a length");
        assert_eq!(body.len(), length);
    }
}
