//! A lean HTTP/1.1 client for the one loopback endpoint under test.
//!
//! Profiles of the generator showed most of its time in the general-purpose HTTP client
//! (request building, URL handling, retry and pool layers), time taken from the server
//! it shares two cores with. This is hyper's connection API with a minimal pool on top:
//! idle connections in a stack (the warmest is reused first), a connection returned only
//! once its response body has been read to the end, and a request that never left on a
//! connection the server had just closed sent again on a fresh one.
//!
//! Requests (everything but GET streams) are capped at a number in flight, and so are
//! the connections they need: a server that falls behind an open-loop load would
//! otherwise face thousands of new connections at once, more than its accept queue
//! holds. Requests beyond the cap wait here, and the wait counts as latency.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// The request body type (always in one piece).
pub type Body = Full<Bytes>;
type Sender = SendRequest<Body>;

/// How long a TCP connect may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// A pooled client for one address; cheap to clone.
#[derive(Clone)]
pub struct Client(Arc<Pool>);

struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<Sender>>,
    /// Requests in flight (GET streams excluded).
    requests: Arc<Semaphore>,
}

/// Whether a request counts against the in-flight cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request answered at once (or within a wait timeout).
    Request,
    /// A GET stream, held for the session's life.
    Stream,
}

/// The connection a response came on. [`Lease::release`] it once the body has been read
/// to the end; dropping it instead closes the connection (the body was abandoned).
pub struct Lease {
    sender: Option<Sender>,
    pool: Arc<Pool>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    /// Returns the connection to the pool.
    pub fn release(mut self) {
        if let Some(sender) = self.sender.take()
            && !sender.is_closed()
        {
            self.pool.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sender);
        }
    }
}

impl Client {
    /// A client for `addr` with at most `max_requests` requests in flight.
    pub fn new(addr: SocketAddr, max_requests: usize) -> Client {
        let requests = Arc::new(Semaphore::new(max_requests.max(1)));
        Client(Arc::new(Pool { addr, idle: Mutex::new(Vec::new()), requests }))
    }

    /// Sends `request`; the response comes with the lease of its connection.
    pub async fn send(&self, request: Request<Body>, kind: Kind) -> Result<(Response<Incoming>, Lease)> {
        let mut request = request;
        let permit = match kind {
            Kind::Request => Some(
                self.0
                    .requests
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::new("HTTP client closed"))?,
            ),
            Kind::Stream => None,
        };
        let mut permit = permit;
        // An idle connection the server has just closed can fail before the request left;
        // hyper then hands the request back and it goes out on a new connection.
        for _ in 0..3 {
            let mut sender = self.checkout().await?;
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease { sender: Some(sender), pool: self.0.clone(), _permit: permit.take() };
                    return Ok((response, lease));
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(Error::new(format!("HTTP: {}", failed.into_error()))),
                },
            }
        }
        Err(Error::new("HTTP: could not send the request on three connections in a row"))
    }

    /// The warmest idle connection that is still open, or a new one.
    async fn checkout(&self) -> Result<Sender> {
        loop {
            let candidate = self.0.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
            let Some(mut sender) = candidate else { break };
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<Sender> {
        let stream = tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(self.0.addr))
            .await
            .map_err(|_| Error::new(format!("connecting to {} timed out", self.0.addr)))??;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::new(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// A body stream that returns its connection to the pool when it ends cleanly (a GET
/// stream the server closed, after DELETE for example), so churn reuses connections
/// instead of leaving sockets in TIME_WAIT.
pub struct Releasing<S> {
    inner: Pin<Box<S>>,
    lease: Option<Lease>,
}

impl<S> Releasing<S> {
    /// Wraps `inner`, releasing `lease` at its end.
    pub fn new(inner: S, lease: Lease) -> Releasing<S> {
        Releasing { inner: Box::pin(inner), lease: Some(lease) }
    }
}

impl<S: Stream> Stream for Releasing<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next
            && let Some(lease) = self.lease.take()
        {
            lease.release();
        }
        next
    }
}
