//! Measures the two ways to own the core that the server could use:
//!
//! - **mutex**: `std::sync::Mutex<Chat>`, locked only for the synchronous call (what the
//!   server does, see `state/hub.rs`);
//! - **actor**: one task owns the `Chat` and serves commands from an mpsc channel, each
//!   caller awaiting a oneshot reply.
//!
//! Each of `TASKS` tasks acts for one checked-in agent and repeatedly sends a direct
//! message to the next agent and fetches its own mailbox, draining events like the
//! server does. Run with `cargo run --release -p chat-mcp-http --example owner_bench`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_core::{Chat, Command, Config, Limits, Outbound, Reply, SessionId, Time};
use tokio::sync::{mpsc, oneshot};

const TASKS: usize = 64;
const ROUNDS: usize = 2_000;

fn now() -> Time {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Time::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

fn chat_with_agents() -> (Chat, Vec<SessionId>) {
    let limits = Limits { rate_messages: u32::MAX, ..Limits::default() };
    let mut chat = Chat::new(Config { seed: [7; 32], limits, registered: Vec::new() });
    let t = now();
    let sessions: Vec<_> = (0..TASKS)
        .map(|i| {
            let s = chat.open_session(t);
            let checkin = Command::Checkin {
                client_id: format!("agent-{i}"),
                name: None,
                capabilities: vec![],
                resume_token: None,
            };
            chat.handle(t, s, checkin).map(|_| s).expect("check in")
        })
        .collect();
    (chat, sessions)
}

fn step(chat: &mut Chat, session: SessionId, i: usize, round: usize) -> Vec<Outbound> {
    let t = now();
    let command = if round.is_multiple_of(2) {
        Command::SendDirect {
            recipient_id: format!("agent-{}", (i + 1) % TASKS),
            message: "hello there".into(),
            client_message_id: None,
        }
    } else {
        Command::GetMessages { limit: None }
    };
    let reply = chat.handle(t, session, command);
    assert!(matches!(reply, Ok(Reply::SentDirect(_) | Reply::Messages(_))), "{reply:?}");
    std::iter::from_fn(|| chat.poll_outbound()).collect()
}

fn report(name: &str, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort_unstable();
    let ops = latencies.len();
    let pct = |p: f64| latencies[((ops as f64 * p) as usize).min(ops - 1)];
    println!(
        "{name:6} {ops} calls in {elapsed:.2?}: {:.0} calls/s, p50 {:?}, p99 {:?}, max {:?}",
        ops as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}

async fn mutex_mode() {
    let (chat, sessions) = chat_with_agents();
    let chat = Arc::new(Mutex::new(chat));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let chat = chat.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(ROUNDS);
            for round in 0..ROUNDS {
                let t = Instant::now();
                let events = {
                    let mut chat = chat.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    step(&mut chat, session, i, round)
                };
                drop(events); // the server dispatches these after unlocking
                latencies.push(t.elapsed());
                tokio::task::yield_now().await;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    report("mutex", started.elapsed(), all);
}

type Job = (SessionId, usize, usize, oneshot::Sender<Vec<Outbound>>);

async fn actor_mode() {
    let (mut chat, sessions) = chat_with_agents();
    let (tx, mut rx) = mpsc::channel::<Job>(1024);
    let owner = tokio::spawn(async move {
        while let Some((session, i, round, reply)) = rx.recv().await {
            let _ = reply.send(step(&mut chat, session, i, round));
        }
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(ROUNDS);
            for round in 0..ROUNDS {
                let t = Instant::now();
                let (reply_tx, reply_rx) = oneshot::channel();
                tx.send((session, i, round, reply_tx)).await.expect("owner alive");
                drop(reply_rx.await.expect("reply"));
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    drop(tx);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    report("actor", started.elapsed(), all);
    owner.await.expect("owner");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!(
        "{TASKS} tasks x {ROUNDS} calls on {} worker threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for _ in 0..2 {
        runtime.block_on(mutex_mode());
        runtime.block_on(actor_mode());
    }
}
