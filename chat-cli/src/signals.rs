//! Signals that mean "quit": Ctrl-C (SIGINT), SIGTERM, and SIGHUP (the terminal closed).
//! Each closes the session properly, so a partner is told at once instead of after the
//! server's reconnect grace.

/// Listens for quit signals; create once and keep, so no signal is missed between waits.
pub struct QuitSignals {
    #[cfg(unix)]
    streams: Vec<tokio::signal::unix::Signal>,
}

impl QuitSignals {
    /// Starts listening. Signals that cannot be hooked are skipped.
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()];
            QuitSignals { streams: kinds.into_iter().filter_map(|k| signal(k).ok()).collect() }
        }
        #[cfg(not(unix))]
        QuitSignals {}
    }

    /// Resolves at the next quit signal.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if self.streams.is_empty() {
                return std::future::pending().await;
            }
            let waits = self.streams.iter_mut().map(|s| Box::pin(s.recv()));
            let _ = futures_select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

impl Default for QuitSignals {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits for the first of several futures (a tiny `select_all`, to avoid a dependency).
#[cfg(unix)]
async fn futures_select_all<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) -> F::Output {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
