//! The network task: owns the connection, performs the app's actions in order, keeps a
//! `wait_for_events` long poll running, merges it with pushed notifications, and
//! reconnects (resuming the identity with its token) when the connection drops.
//!
//! Every network wait is bounded: a hung request counts as a lost connection.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chat_core::Envelope;
use serde_json::Value;
use tokio::sync::mpsc;

use super::client::{CallError, Caller, Connection, Endpoint, Push};
use super::sequencer::Sequencer;
use super::tools::{self, Credentials, Identify, Poll};
use crate::app::{Action, Joined, NetEvent};

/// How long closing a session may take before we stop waiting.
const CLOSE_LIMIT: Duration = Duration::from_secs(3);
/// Time for the long poll's cancellation to reach the server before the session closes.
const CANCEL_GRACE: Duration = Duration::from_millis(50);
/// Pause before polling again after the server refused a poll.
const POLL_RETRY: Duration = Duration::from_secs(2);

/// Why a connection's session loop ended.
enum Ended {
    /// The user quit.
    Quit,
    /// The app dropped its side of the channels.
    AppGone,
    /// The connection is unusable.
    Lost(String),
}

/// Why (re)connecting failed.
enum Fail {
    /// Could not reach the server or the connection broke: worth retrying.
    Unreachable(String),
    /// The server refused to identify us: retrying will not help.
    Refused(String),
}

/// How we got our identity back.
enum Rejoin {
    /// `resume_session` worked: same identity, room and inbox.
    Resumed(chat_core::IdentityReply),
    /// Identified afresh (first connection, or the server had forgotten us).
    Fresh(Joined, Option<Credentials>),
}

/// Actions from the app, with room to keep the ones that arrive while reconnecting.
struct Actions {
    rx: mpsc::UnboundedReceiver<Action>,
    deferred: VecDeque<Action>,
}

impl Actions {
    /// Runs `future` while still listening to the app. Returns `None` if the app is gone
    /// or, when `quit_interrupts`, the user quit first; other actions (and a `Quit` that
    /// does not interrupt) are kept for later, except typing updates, which would be stale
    /// by then.
    async fn interruptible<F: Future>(&mut self, future: F, quit_interrupts: bool) -> Option<F::Output> {
        tokio::pin!(future);
        loop {
            tokio::select! {
                output = &mut future => return Some(output),
                action = self.rx.recv() => match action {
                    None => return None,
                    Some(Action::Quit) if quit_interrupts => return None,
                    Some(Action::SetTyping { .. }) => {}
                    Some(action) => self.deferred.push_back(action),
                },
            }
        }
    }
}

type PollFuture = Pin<Box<dyn Future<Output = Result<Poll, CallError>> + Send>>;

/// The network task's state.
pub(super) struct Worker {
    endpoint: Endpoint,
    identify: Identify,
    poll_wait_secs: u64,
    events: mpsc::UnboundedSender<NetEvent>,
    actions: Actions,
    push_tx: mpsc::UnboundedSender<Push>,
    push_rx: mpsc::UnboundedReceiver<Push>,
    /// Tags the current connection's pushes.
    epoch: u64,
    credentials: Option<Credentials>,
    sequencer: Sequencer<Option<Envelope>>,
}

impl Worker {
    pub(super) fn new(
        endpoint: Endpoint,
        identify: Identify,
        poll_wait_secs: u64,
        actions: mpsc::UnboundedReceiver<Action>,
        events: mpsc::UnboundedSender<NetEvent>,
    ) -> Self {
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        Worker {
            endpoint,
            identify,
            poll_wait_secs,
            events,
            actions: Actions { rx: actions, deferred: VecDeque::new() },
            push_tx,
            push_rx,
            epoch: 0,
            credentials: None,
            sequencer: Sequencer::default(),
        }
    }

    fn emit(&self, event: NetEvent) {
        let _ = self.events.send(event);
    }

    /// Connects, then serves connections until the user quits.
    pub(super) async fn run(mut self) {
        let attempt = connect(self.endpoint.clone(), 0, self.push_tx.clone(), None, self.identify.clone());
        // Quitting does not cut the first connection short: its outcome (an error for an
        // unreachable server) is worth reporting, and it is bounded by the connect timeout.
        let mut conn = match self.actions.interruptible(attempt, false).await {
            None => return self.emit(NetEvent::Closed),
            Some(Err(Fail::Unreachable(e))) => {
                return self.emit(NetEvent::Fatal(format!("cannot connect to {}: {e}", self.endpoint.url)));
            }
            Some(Err(Fail::Refused(e))) => {
                return self.emit(NetEvent::Fatal(format!("the server refused: {e}")));
            }
            Some(Ok((conn, rejoin))) => {
                self.rejoined(rejoin, false);
                conn
            }
        };
        loop {
            match self.serve(&conn).await {
                Ended::Quit => {
                    // `serve` dropped the long poll, which queues `notifications/cancelled`
                    // for it; give that a moment to go out so the server stops waiting at
                    // once instead of holding the closing session until the poll expires.
                    tokio::time::sleep(CANCEL_GRACE).await;
                    conn.close(CLOSE_LIMIT).await;
                    return self.emit(NetEvent::Closed);
                }
                Ended::AppGone => return conn.close(CLOSE_LIMIT).await,
                Ended::Lost(reason) => {
                    // Closing may hang on a dead network: let it finish in the background.
                    tokio::spawn(conn.close(CLOSE_LIMIT));
                    conn = match self.reconnect(reason).await {
                        Some(conn) => conn,
                        None => return self.emit(NetEvent::Closed),
                    };
                }
            }
        }
    }

    fn rejoined(&mut self, rejoin: Rejoin, after_loss: bool) {
        match rejoin {
            Rejoin::Resumed(identity) => self.emit(NetEvent::Resumed(identity)),
            Rejoin::Fresh(joined, credentials) => {
                self.sequencer.reset();
                if credentials.is_some() {
                    self.credentials = credentials;
                }
                self.emit(NetEvent::Joined { joined, fresh: after_loss });
            }
        }
    }

    /// Tries again and again, with growing pauses, until reconnected (`Some`) or the
    /// user quits (`None`). Each try resumes the identity, or starts afresh if the server
    /// no longer knows it.
    async fn reconnect(&mut self, mut reason: String) -> Option<Connection> {
        for attempt in 1u32.. {
            self.emit(NetEvent::Reconnecting { attempt, reason: reason.clone() });
            self.actions.interruptible(tokio::time::sleep(backoff(attempt)), true).await?;
            self.epoch += 1;
            let attempt = connect(
                self.endpoint.clone(),
                self.epoch,
                self.push_tx.clone(),
                self.credentials.clone(),
                self.identify.clone(),
            );
            match self.actions.interruptible(attempt, true).await? {
                Ok((conn, rejoin)) => {
                    self.rejoined(rejoin, true);
                    return Some(conn);
                }
                Err(Fail::Unreachable(e)) => reason = e,
                Err(Fail::Refused(e)) => {
                    self.emit(NetEvent::Fatal(format!("the server refused to take us back: {e}")));
                    return None;
                }
            }
        }
        None
    }

    fn start_poll(&self, caller: &Caller, delay: Duration) -> PollFuture {
        let caller = caller.clone();
        let (cursor, wait) = (self.sequencer.cursor(), self.poll_wait_secs);
        // The server answers within `wait`; allow generously for the network on top.
        let limit = Duration::from_secs(wait + 15);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            tools::poll(&caller, cursor, wait, limit).await
        })
    }

    /// One connection's life: actions in order, the long poll, pushes.
    async fn serve(&mut self, conn: &Connection) -> Ended {
        let caller = conn.caller(self.endpoint.call_timeout);
        let mut poll = self.start_poll(&caller, Duration::ZERO);
        loop {
            if let Some(action) = self.actions.deferred.pop_front() {
                if action == Action::Quit {
                    return Ended::Quit;
                }
                if let Err(reason) = self.perform(&caller, action).await {
                    return Ended::Lost(reason);
                }
                continue;
            }
            tokio::select! {
                result = &mut poll => match result {
                    Ok(reply) => {
                        self.deliver_poll(reply);
                        poll = self.start_poll(&caller, Duration::ZERO);
                    }
                    Err(CallError::Transport(reason)) => return Ended::Lost(reason),
                    Err(_) => poll = self.start_poll(&caller, POLL_RETRY),
                },
                action = self.actions.rx.recv() => match action {
                    None => return Ended::AppGone,
                    Some(Action::Quit) => return Ended::Quit,
                    Some(action) => {
                        if let Err(reason) = self.perform(&caller, action).await {
                            return Ended::Lost(reason);
                        }
                    }
                },
                Some((epoch, params)) = self.push_rx.recv() => {
                    if epoch == self.epoch {
                        self.deliver_push(params);
                    }
                }
            }
        }
    }

    /// Performs an action and reports the outcome. `Err` = the connection is lost.
    async fn perform(&mut self, caller: &Caller, action: Action) -> Result<(), String> {
        match tools::perform(caller, &self.identify, action).await {
            Ok(Some(event)) => self.emit(event),
            Ok(None) | Err((None, CallError::Tool { .. } | CallError::Protocol(_))) => {}
            Err((request, CallError::Transport(reason))) => {
                if let Some(request) = request {
                    let message = format!("connection lost ({reason}); it may not have gone through");
                    self.emit(NetEvent::Failed { request, message });
                }
                return Err(reason);
            }
            Err((Some(request), error)) => {
                self.emit(NetEvent::Failed { request, message: error.to_string() })
            }
        }
        Ok(())
    }

    fn deliver_poll(&mut self, reply: Poll) {
        if reply.evicted > 0 {
            self.emit(NetEvent::Evicted(reply.evicted));
        }
        let (items, complete) = reply.split();
        for envelope in self.sequencer.on_poll(items, complete).into_iter().flatten() {
            self.emit(NetEvent::Event(envelope));
        }
    }

    fn deliver_push(&mut self, params: Value) {
        let Some(seq) = params.get("seq").and_then(Value::as_u64) else { return };
        let envelope = serde_json::from_value::<Envelope>(params).ok();
        for envelope in self.sequencer.on_push(seq, envelope).into_iter().flatten() {
            self.emit(NetEvent::Event(envelope));
        }
    }
}

/// Pause before reconnect attempt `attempt` (1-based): quick at first, then every 3 s,
/// well inside the server's reconnect grace (30 s by default).
fn backoff(attempt: u32) -> Duration {
    match attempt {
        0 | 1 => Duration::from_millis(200),
        2 => Duration::from_millis(500),
        3 => Duration::from_secs(1),
        4 => Duration::from_secs(2),
        _ => Duration::from_secs(3),
    }
}

/// Opens a connection and gets an identity on it: resumes `credentials` when given,
/// identifies afresh otherwise (or when the server no longer knows them).
async fn connect(
    endpoint: Endpoint,
    epoch: u64,
    pushes: mpsc::UnboundedSender<Push>,
    credentials: Option<Credentials>,
    identify: Identify,
) -> Result<(Connection, Rejoin), Fail> {
    let conn = Connection::open(&endpoint, epoch, pushes).await.map_err(Fail::Unreachable)?;
    let caller = conn.caller(endpoint.call_timeout);
    let rejoin = async {
        if let Some(credentials) = &credentials {
            match tools::resume(&caller, credentials).await {
                Ok(identity) => return Ok(Rejoin::Resumed(identity)),
                Err(CallError::Transport(e)) => return Err(Fail::Unreachable(e)),
                Err(_) => {} // the server has forgotten us: start afresh below
            }
        }
        match identify.run(&caller).await {
            Ok((joined, credentials)) => Ok(Rejoin::Fresh(joined, credentials)),
            Err(CallError::Transport(e)) => Err(Fail::Unreachable(e)),
            Err(e) => Err(Fail::Refused(e.to_string())),
        }
    }
    .await;
    match rejoin {
        Ok(rejoin) => Ok((conn, rejoin)),
        Err(fail) => {
            conn.close(Duration::from_secs(1)).await;
            Err(fail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_inside_the_grace() {
        let total: Duration = (1..=10).map(backoff).sum();
        assert!(backoff(1) < backoff(3));
        assert_eq!(backoff(100), Duration::from_secs(3));
        assert!(total < Duration::from_secs(30), "ten tries fit in the default grace: {total:?}");
    }
}
