//! Start-up time on a big SQLite store: prints figures.
//!
//! Writes a store as the journal would (inputs in commits of 4,096, a snapshot every
//! 100,000 inputs or a fifth argument's count, none at the end, so start-up replays the longest tail the default
//! `--snapshot-every` allows), then restores it and reports the snapshot size per
//! participant and how long restoring takes.
//!
//! ```sh
//! cargo run --release -p chat-mcp-http --example recovery_bench -- 100000 1000000 /tmp/bench.db
//! ACKS=1 cargo run --release -p chat-mcp-http --example recovery_bench -- 100000 1000000 /tmp/bench.db
//! # then the real start-up on it (time to the "listening" line):
//! target/release/chat-mcp-http --port 0 --store sqlite:/tmp/bench.db
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chat_core::{ActivityState, Chat, Command, Config, Hold, Input, Limits, Time};
use chat_mcp_http::state::journal::recover;
use chat_mcp_http::store::sqlite::SqliteStore;
use chat_mcp_http::store::{Record, Store, Sync};

/// Inputs per commit, as `--journal-batch` would allow under load.
const BATCH: usize = 4096;
/// Snapshot cadence: the default `--snapshot-every` unless a fourth argument says.
const SNAPSHOT_EVERY: u64 = 100_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let participants: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let inputs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let path =
        args.next().map_or_else(|| std::env::temp_dir().join("mcp-chat-recovery-bench.db"), PathBuf::from);
    let every: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(SNAPSHOT_EVERY);
    // ACKS=1: clients acknowledge their events now and then (wait_for_events with a
    // cursor), as tool-polling clients do; without it nobody does (push-only clients),
    // so every inbox stays full: the heavier state.
    let acks = std::env::var_os("ACKS").is_some();
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut store = SqliteStore::open(&path, Sync::Off).expect("open the store");
    let limits = Limits { max_participants: participants * 2, ..Limits::default() };
    let mut chat = Chat::new(Config { seed: [7; 32], limits, registered: Vec::new() });
    // The log ends about now, as it would for a restart right after a crash.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let start = Time::from_millis(now_ms.saturating_sub(inputs));
    store.save_snapshot(0, start.as_millis(), &chat.snapshot().expect("snapshot")).expect("first snapshot");

    let mut writer =
        Writer { store: &mut store, pending: Vec::with_capacity(BATCH), position: 0, last: inputs, every };
    let mut sessions = Vec::with_capacity(participants);
    let mut at = start;
    let began = Instant::now();
    // Every participant: a session (with its Mcp-Session-Id), its GET stream, its identity.
    for i in 0..participants {
        let key: Arc<str> = Arc::from(format!("{i:032x}"));
        let opened = writer.log(
            &mut chat,
            at,
            Input::Open { key: Some(key), meta: Some("2025-11-25".into()), lease: false },
        );
        let chat_core::Applied::Opened(session) = opened else { panic!("a session opens") };
        writer.log(&mut chat, at, Input::Hold { session, what: Hold::Stream, node: None });
        let command = if i.is_multiple_of(2) {
            Command::EnterQueue {
                user_id: None,
                display_name: Some(format!("user {i}")),
                interests: vec![],
                resume_token: None,
            }
        } else {
            Command::Checkin {
                client_id: format!("agent-{i}"),
                name: None,
                capabilities: vec![],
                resume_token: None,
            }
        };
        writer.log(&mut chat, at, Input::Command { session, command, act_as: None });
        sessions.push(session);
    }
    // The rest: room messages, direct messages between agents, mailboxes read now and then.
    let mut random = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    while writer.position < inputs {
        at = Time::from_millis(at.as_millis() + 1);
        let i = (next() % participants as u64) as usize;
        let session = sessions[i];
        let command = if acks && next() % 3 == 0 {
            // A client that fetches with wait_for_events acknowledges what it has seen.
            Command::Events { after_seq: Some(chat.event_cursor(session)), limit: Some(1) }
        } else if i.is_multiple_of(2) {
            match chat.peek_identity(session).activity {
                ActivityState::Chatting { room_id, .. } => Command::SendRoom {
                    room_id: room_id.to_string(),
                    message: format!("hello {}", writer.position),
                    client_message_id: None,
                },
                _ => Command::Identity,
            }
        } else if next() % 4 == 0 {
            Command::GetMessages { limit: None }
        } else {
            let to = (next() % (participants as u64 / 2).max(1)) * 2 + 1;
            Command::SendDirect {
                recipient_id: format!("agent-{to}"),
                message: format!("note {}", writer.position),
                client_message_id: None,
            }
        };
        writer.log(&mut chat, at, Input::Command { session, command, act_as: None });
    }
    writer.flush();
    let written = began.elapsed();
    let stats = chat.stats();
    drop(store);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {inputs} inputs for {participants} participants ({} rooms, {} online) in {:.1} s; store file {:.1} MB",
        stats.rooms_active,
        stats.online,
        written.as_secs_f64(),
        size as f64 / 1e6
    );

    let started = Instant::now();
    let mut store = SqliteStore::open(&path, Sync::Full).expect("reopen the store");
    let opened = started.elapsed();
    let recovered = recover(&mut store, || panic!("the store is not empty")).expect("recover");
    let took = started.elapsed();
    // The parts of it: reading the snapshot, decoding it (the rest is the replay).
    let read = Instant::now();
    let bytes = store.read_snapshot(recovered.snapshot).expect("read the snapshot");
    let read = read.elapsed();
    let decode = Instant::now();
    Chat::restore(&bytes).expect("decode the snapshot");
    let decode = decode.elapsed();
    let snapshot = bytes.len();
    println!(
        "restored: snapshot at input {} ({:.1} MB, {} bytes per participant), {} inputs replayed, position {}",
        recovered.snapshot,
        snapshot as f64 / 1e6,
        snapshot / participants.max(1),
        recovered.replayed,
        recovered.position
    );
    println!(
        "restore time: {:.2} s (open {:.0} ms, read snapshot {:.0} ms, decode it {:.0} ms, replay the rest); \
same state as written: {}",
        took.as_secs_f64(),
        opened.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3,
        decode.as_secs_f64() * 1e3,
        recovered.chat.snapshot().ok() == chat.snapshot().ok()
    );
}

/// Logs inputs in commits of [`BATCH`] and snapshots every [`SNAPSHOT_EVERY`], as the
/// journal does.
struct Writer<'a> {
    store: &'a mut SqliteStore,
    pending: Vec<Record>,
    position: u64,
    /// The last position to be written: no snapshot there.
    last: u64,
    /// Snapshot cadence.
    every: u64,
}

impl Writer<'_> {
    fn log(&mut self, chat: &mut Chat, at: Time, input: Input) -> chat_core::Applied {
        self.position += 1;
        let bytes = serde_json::to_vec(&input).expect("encode an input");
        self.pending.push(Record { position: self.position, at_ms: at.as_millis(), input: bytes });
        let applied = chat.apply(at, input);
        while chat.poll_outbound().is_some() {}
        while chat.poll_expired().is_some() {}
        if self.pending.len() >= BATCH {
            self.flush();
        }
        // None at the very end: start-up then replays a whole cadence's worth of inputs.
        if self.position.is_multiple_of(self.every) && self.position < self.last {
            self.flush();
            self.snapshot(chat, at);
        }
        applied
    }

    fn snapshot(&mut self, chat: &Chat, at: Time) {
        let state = chat.snapshot().expect("snapshot");
        self.store.save_snapshot(self.position, at.as_millis(), &state).expect("save a snapshot");
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.store.append(&self.pending).expect("append");
            self.pending.clear();
        }
    }
}
