//! The network task: owns the connection, performs the app's actions in order, keeps a
//! `wait_for_events` long poll running, merges it with pushed notifications, and
//! reconnects (resuming the identity with its token) when the connection drops.
//!
//! The identity's resume token is also kept in the state file (see [`crate::state`]),
//! so a client started again after a quit, a crash or `kill -9` takes its identity back:
//! a dm client id with `checkin_client {resume_token}`, a roulette user id (of a client
//! that did not quit) with `resume_session`, back in its room if the reconnect grace has
//! not run out.
//!
//! Every network wait is bounded: a hung request counts as a lost connection.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chat_core::{ActivityState, Envelope};
use serde_json::Value;
use tokio::sync::mpsc;

use super::client::{CallError, Caller, Connection, Endpoint, Push};
use super::sequencer::Sequencer;
use super::tools::{self, Credentials, Identify, Poll};
use crate::app::{Action, Joined, NetEvent};
use crate::clock;
use crate::state::{self, Store};

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
    /// Another session took the identity over with its token.
    TakenOver,
}

/// Why (re)connecting failed.
enum Fail {
    /// Could not reach the server or the connection broke: worth retrying.
    Unreachable(String),
    /// The server refused to identify us: retrying will not help.
    Refused(String),
    /// The id exists and the server did not accept our token for it (`bad_resume_token`):
    /// it belongs to someone else's token.
    NotOurs,
    /// The id exists and we have no token for it (`identity_taken`).
    Taken,
}

/// How we got our identity back.
enum Rejoin {
    /// `resume_session` worked: same identity, room and inbox.
    Resumed(chat_core::IdentityReply),
    /// Identified (first connection, or the server had forgotten us).
    Fresh {
        /// The identifying reply.
        joined: Joined,
        /// What to keep for reconnecting (and in the state file).
        credentials: Option<Credentials>,
        /// The identity existed and was taken back with a saved token.
        restored: bool,
    },
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
                    Some(Action::SetTyping { .. } | Action::SetDirectTyping { .. }) => {}
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
    /// Where the identity's token is kept between runs; `Err` says why nowhere.
    store: Result<Store, String>,
}

impl Worker {
    pub(super) fn new(
        endpoint: Endpoint,
        identify: Identify,
        poll_wait_secs: u64,
        store: Result<Store, String>,
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
            store,
        }
    }

    fn emit(&self, event: NetEvent) {
        let _ = self.events.send(event);
    }

    /// Connects, then serves connections until the user quits.
    pub(super) async fn run(mut self) {
        let saved = self.recall();
        // Known as ours from here on, so that a saved roulette identity the server no
        // longer has is replaced in the state file by the one we get instead.
        self.credentials.clone_from(&saved);
        let attempt =
            connect(self.endpoint.clone(), 0, self.push_tx.clone(), saved, self.identify.clone(), true);
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
            Some(Err(fail)) => return self.emit(NetEvent::Fatal(self.not_ours(fail))),
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
                    self.forget_roulette();
                    return self.emit(NetEvent::Closed);
                }
                Ended::AppGone => return conn.close(CLOSE_LIMIT).await,
                Ended::TakenOver => {
                    conn.close(CLOSE_LIMIT).await;
                    let id = self.credentials.as_ref().map(|c| c.user_id.clone()).unwrap_or_default();
                    return self.emit(NetEvent::Fatal(format!(
                        "another session took '{id}' over with its resume token (is chat-cli running as \
                         '{id}' somewhere else too?); this one stops"
                    )));
                }
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
            Rejoin::Fresh { joined, credentials, restored } => {
                self.sequencer.reset();
                if let Some(credentials) = credentials {
                    self.keep(credentials);
                }
                self.emit(NetEvent::Joined { joined, fresh: after_loss, restored });
            }
        }
    }

    /// The saved credentials for the identity we are asked to be, if any: a dm client's
    /// token, or the newest roulette identity on this server that no running client
    /// holds. Reports a state file that cannot be used.
    fn recall(&self) -> Option<Credentials> {
        let store = match &self.store {
            Ok(store) => store,
            Err(why) => {
                self.emit(NetEvent::Warning(format!(
                    "{why}; this client cannot keep its identity for the next run"
                )));
                return None;
            }
        };
        let loaded = store.load();
        if let Some(warning) = loaded.warning {
            self.emit(NetEvent::Warning(warning));
        }
        let url = &self.endpoint.url;
        match self.identify.client_id() {
            Some(id) => loaded
                .state
                .client_token(url, id)
                .map(|t| Credentials { user_id: id.to_owned(), resume_token: t.clone() }),
            None => loaded
                .state
                .roulette_to_resume(url, state::process_running)
                .map(|r| Credentials { user_id: r.user_id.clone(), resume_token: r.resume_token.clone() }),
        }
    }

    /// Keeps `credentials` for reconnecting and saves them for the next run (a roulette
    /// identity as held by this process, replacing the one it had before).
    fn keep(&mut self, credentials: Credentials) {
        let previous = self.credentials.replace(credentials.clone());
        let Ok(store) = &self.store else { return };
        let url = &self.endpoint.url;
        let now = Some(clock::now());
        let saved = match self.identify.client_id() {
            Some(id) => store.update(|s| s.set_client_token(url, id, credentials.resume_token.clone(), now)),
            None => store.update(|s| {
                if let Some(previous) = previous.filter(|p| p.user_id != credentials.user_id) {
                    s.forget_roulette(url, &previous.user_id);
                }
                let token = credentials.resume_token.clone();
                s.set_roulette(url, &credentials.user_id, token, std::process::id(), now);
            }),
        };
        if let Err(e) = saved {
            let id = &credentials.user_id;
            self.emit(NetEvent::Warning(format!(
                "could not save the resume token of '{id}' ({e}); if this client stops without /quit, \
                 it cannot take '{id}' back"
            )));
        }
    }

    /// After a proper quit, the roulette identity is not worth coming back to: the next
    /// run meets people as someone new. (A dm client id stays ours, so its token stays.)
    fn forget_roulette(&mut self) {
        if self.identify.client_id().is_some() {
            return;
        }
        if let (Ok(store), Some(credentials)) = (&self.store, &self.credentials) {
            let url = &self.endpoint.url;
            // Best effort: an entry left behind is dropped when resuming it fails.
            let _ = store.update(|s| {
                s.forget_roulette(url, &credentials.user_id);
            });
        }
    }

    /// The message for an id that is someone else's ([`Fail::NotOurs`], [`Fail::Taken`]).
    /// A saved token the server did not accept is deleted.
    fn not_ours(&self, fail: Fail) -> String {
        let id = self.identify.client_id().unwrap_or("this id").to_owned();
        let url = self.endpoint.url.clone();
        let file = match &self.store {
            Ok(store) => store.path().display().to_string(),
            Err(_) => "its state file".to_owned(),
        };
        match fail {
            Fail::NotOurs => {
                let forgotten = match &self.store {
                    Ok(store) => match store.update(|s| {
                        s.forget_client(&url, &id);
                    }) {
                        Ok(()) => format!("the saved token was removed from {file}"),
                        Err(e) => format!("the saved token could not be removed ({e})"),
                    },
                    Err(_) => "nothing was saved".to_owned(),
                };
                format!(
                    "'{id}' on {url} belongs to someone else now: the server did not accept the resume token \
                     saved for it (the server may have been reset, and another client claimed '{id}' \
                     since); {forgotten}. Choose another id with --as"
                )
            }
            Fail::Taken => format!(
                "'{id}' on {url} belongs to another owner: someone checked in as '{id}' before and holds \
                 its resume token, and this machine has none for it in {file}. Choose another id with \
                 --as, or run chat-cli as '{id}' where it was first used (that machine keeps the token in \
                 its state file)"
            ),
            Fail::Unreachable(e) | Fail::Refused(e) => e,
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
                false,
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
                Err(fail) => {
                    let message = self.not_ours(fail);
                    self.emit(NetEvent::Fatal(format!("the server refused to take us back: {message}")));
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
                if let Err(ended) = self.perform(&caller, action).await {
                    return ended;
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
                    Err(CallError::Tool { code: Some(code), .. }) if code == "taken_over" => {
                        return Ended::TakenOver;
                    }
                    Err(_) => poll = self.start_poll(&caller, POLL_RETRY),
                },
                action = self.actions.rx.recv() => match action {
                    None => return Ended::AppGone,
                    Some(Action::Quit) => return Ended::Quit,
                    Some(action) => {
                        if let Err(ended) = self.perform(&caller, action).await {
                            return ended;
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

    /// Performs an action and reports the outcome. `Err` = this connection is over (lost,
    /// or the identity taken over).
    async fn perform(&mut self, caller: &Caller, action: Action) -> Result<(), Ended> {
        match tools::perform(caller, &self.identify, action).await {
            Ok(Some(event)) => {
                // A session that had lost its identity gets a new one from enter_queue.
                if let NetEvent::Queued(reply) = &event
                    && let Some(token) = &reply.resume_token
                {
                    let resume_token = crate::state::Token::new(token.to_string());
                    self.keep(Credentials { user_id: reply.user_id.to_string(), resume_token });
                }
                self.emit(event)
            }
            Err((_, CallError::Tool { code: Some(code), .. })) if code == "taken_over" => {
                return Err(Ended::TakenOver);
            }
            Ok(None) | Err((None, CallError::Tool { .. } | CallError::Protocol(_))) => {}
            Err((request, CallError::Transport(reason))) => {
                if let Some(request) = request {
                    let message = format!("connection lost ({reason}); it may not have gone through");
                    self.emit(NetEvent::Failed { request, message });
                }
                return Err(Ended::Lost(reason));
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

/// Opens a connection and gets an identity on it. The `first` connection identifies
/// with the `credentials` saved by an earlier run, if any (see [`first_join`]); a later
/// one resumes `credentials` when given, and identifies afresh when the server no longer
/// knows them.
async fn connect(
    endpoint: Endpoint,
    epoch: u64,
    pushes: mpsc::UnboundedSender<Push>,
    credentials: Option<Credentials>,
    identify: Identify,
    first: bool,
) -> Result<(Connection, Rejoin), Fail> {
    let conn = Connection::open(&endpoint, epoch, pushes).await.map_err(Fail::Unreachable)?;
    let caller = conn.caller(endpoint.call_timeout);
    let rejoin = async {
        if first {
            return first_join(&caller, &identify, credentials.as_ref()).await;
        }
        if let Some(credentials) = &credentials {
            match tools::resume(&caller, credentials).await {
                Ok(identity) => return Ok(Rejoin::Resumed(identity)),
                Err(CallError::Transport(e)) => return Err(Fail::Unreachable(e)),
                Err(_) => {} // the server has forgotten us: start afresh below
            }
        }
        identify_with(&caller, &identify, credentials.as_ref()).await
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

/// The first identification, with what an earlier run saved. A dm client checks in with
/// its token. A roulette identity is resumed: in the middle of a chat it is back in its
/// room; otherwise it queues again (keeping its place if it had one, with this run's
/// name and interests). A roulette identity the server no longer has is replaced by a
/// new one.
async fn first_join(
    caller: &Caller,
    identify: &Identify,
    saved: Option<&Credentials>,
) -> Result<Rejoin, Fail> {
    let (Identify::Roulette { .. }, Some(saved)) = (identify, saved) else {
        return identify_with(caller, identify, saved).await;
    };
    match tools::resume(caller, saved).await {
        Ok(identity) if matches!(identity.activity, ActivityState::Chatting { .. }) => Ok(Rejoin::Fresh {
            joined: Joined::Restored(identity),
            credentials: Some(saved.clone()),
            restored: true,
        }),
        Ok(_) => match identify.run(caller, None).await {
            Ok((joined, _)) => Ok(Rejoin::Fresh { joined, credentials: Some(saved.clone()), restored: true }),
            Err(CallError::Transport(e)) => Err(Fail::Unreachable(e)),
            // Matched in the moment between the two calls: take the room.
            Err(CallError::Tool { code: Some(code), .. }) if code == "already_in_room" => {
                match tools::resume(caller, saved).await {
                    Ok(identity) => Ok(Rejoin::Fresh {
                        joined: Joined::Restored(identity),
                        credentials: Some(saved.clone()),
                        restored: true,
                    }),
                    Err(CallError::Transport(e)) => Err(Fail::Unreachable(e)),
                    Err(e) => Err(Fail::Refused(e.to_string())),
                }
            }
            Err(e) => Err(Fail::Refused(e.to_string())),
        },
        Err(CallError::Transport(e)) => Err(Fail::Unreachable(e)),
        // Gone (the grace and the retention are over, or the server restarted).
        Err(_) => identify_with(caller, identify, None).await,
    }
}

/// `enter_queue` or `checkin_client`, in dm mode with the token in `credentials`.
async fn identify_with(
    caller: &Caller,
    identify: &Identify,
    credentials: Option<&Credentials>,
) -> Result<Rejoin, Fail> {
    let token = match identify {
        Identify::Dm { .. } => credentials.map(|c| &c.resume_token),
        Identify::Roulette { .. } => None,
    };
    match identify.run(caller, token).await {
        Ok((joined, credentials)) => {
            // The server keeps the token; a new one means it created the identity anew.
            let restored = token.is_some() && credentials.as_ref().map(|c| &c.resume_token) == token;
            Ok(Rejoin::Fresh { joined, credentials, restored })
        }
        Err(CallError::Transport(e)) => Err(Fail::Unreachable(e)),
        Err(CallError::Tool { code: Some(code), .. }) if code == "bad_resume_token" && token.is_some() => {
            Err(Fail::NotOurs)
        }
        Err(CallError::Tool { code: Some(code), .. }) if code == "identity_taken" && token.is_none() => {
            Err(Fail::Taken)
        }
        Err(e) => Err(Fail::Refused(e.to_string())),
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
