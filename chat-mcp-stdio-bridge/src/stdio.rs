//! The host side: newline-delimited JSON-RPC on stdin and stdout.
//!
//! stdout belongs to the protocol: only complete JSON-RPC messages, one per
//! line, are ever written to it, and only by the single writer task below, so
//! lines from concurrent streams can never interleave. Logs go to stderr.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dedupe::SeqDedupe;
use crate::jsonrpc::Message;

/// Queue depth between producers and the stdout writer. Bounded so that a
/// host that stops reading slows the HTTP streams down (TCP backpressure)
/// instead of growing memory without limit.
const QUEUE: usize = 1024;
/// How many recent `seq`-numbered notifications are remembered for dedupe.
const SEQ_MEMORY: usize = 4096;

/// What the writer task is asked to do, in order.
#[derive(Debug)]
enum Out {
    Write(Message),
    /// A new session starts a new `seq` space: forget remembered seqs so
    /// that its first notifications are not mistaken for old ones.
    ResetDedupe,
}

/// Handle for writing messages to the host. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbound {
    tx: mpsc::Sender<Out>,
}

impl Outbound {
    /// Queues `msg` for stdout. Returns false once stdout is gone.
    pub async fn send(&self, msg: Message) -> bool {
        self.tx.send(Out::Write(msg)).await.is_ok()
    }

    /// Clears the duplicate filter once everything queued so far is written.
    pub async fn reset_dedupe(&self) {
        let _ = self.tx.send(Out::ResetDedupe).await;
    }
}

/// Starts the stdout writer. `closed` is cancelled if the host stops
/// reading (broken pipe), which shuts the bridge down.
pub fn spawn_writer<W>(out: W, closed: CancellationToken) -> (Outbound, JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = tokio::spawn(write_loop(out, rx, closed));
    (Outbound { tx }, handle)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut out: W,
    mut rx: mpsc::Receiver<Out>,
    closed: CancellationToken,
) {
    let mut dedupe = SeqDedupe::new(SEQ_MEMORY);
    let mut buf = Vec::with_capacity(8 * 1024);
    while let Some(first) = rx.recv().await {
        // Write everything already queued, then flush once: one flush per
        // burst instead of per message, yet nothing waits behind a flush.
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Out::Write(msg) if dedupe.admit(&msg) => {
                    buf.extend_from_slice(msg.to_line().as_bytes());
                    buf.push(b'\n');
                }
                Out::Write(msg) => {
                    tracing::debug!(message = msg.raw(), "dropped duplicate notification");
                }
                Out::ResetDedupe => dedupe = SeqDedupe::new(SEQ_MEMORY),
            }
            next = if buf.len() < 64 * 1024 { rx.try_recv().ok() } else { None };
        }
        if buf.is_empty() {
            continue;
        }
        let result = async {
            out.write_all(&buf).await?;
            out.flush().await
        }
        .await;
        buf.clear();
        if let Err(e) = result {
            tracing::warn!("stdout closed ({e}); shutting down");
            closed.cancel();
            return;
        }
    }
    let _ = out.flush().await;
}

/// Reads stdin line by line. Bytes are returned raw so that invalid UTF-8
/// becomes a JSON-RPC parse error instead of killing the reader.
pub struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader { inner: BufReader::new(inner), buf: Vec::new() }
    }

    /// The next line without its terminator, or `None` at end of input.
    /// Cancel-safe: a partially read line stays in the buffer.
    pub async fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let n = self.inner.read_until(b'\n', &mut self.buf).await?;
        if n == 0 && self.buf.is_empty() {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.buf);
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reader_splits_lines_and_keeps_last_unterminated_line() {
        let input: &[u8] = b"a\r\n\nb\nlast";
        let mut r = LineReader::new(input);
        let mut lines = Vec::new();
        while let Some(line) = r.next_line().await.expect("read") {
            lines.push(String::from_utf8(line).expect("utf8"));
        }
        assert_eq!(lines, ["a", "", "b", "last"]);
    }

    #[tokio::test]
    async fn writer_writes_one_line_per_message_and_dedupes() {
        let (client, mut server) = tokio::io::duplex(4096);
        let (out, handle) = spawn_writer(client, CancellationToken::new());
        let n = Message::parse(r#"{"jsonrpc":"2.0","method":"m","params":{"seq":3}}"#).expect("json");
        let multi = Message::parse("{\"id\":1,\n\"result\":{}}").expect("json");
        assert!(out.send(n.clone()).await);
        assert!(out.send(n.clone()).await);
        assert!(out.send(multi).await);
        out.reset_dedupe().await;
        assert!(out.send(n).await);
        drop(out);
        handle.await.expect("writer");
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut server, &mut text).await.expect("read");
        assert_eq!(
            text,
            "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"seq\":3}}\n{\"id\":1, \"result\":{}}\n\
             {\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"seq\":3}}\n"
        );
    }
}
