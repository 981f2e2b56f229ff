//! Snapshot size and time for a core with many participants: prints figures.
//!
//! `cargo run --release -p chat-core --example snapshot_size -- 100000`

use std::time::Instant;

use chat_core::{Chat, Command, Config, Hold, Input, Limits, Time};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mut chat = Chat::new(Config { seed: [1; 32], limits: Limits::default(), registered: Vec::new() });
    let now = Time::from_millis(1_704_110_400_000);
    let mut log = 0usize;
    for i in 0..n {
        let s = chat.open_session(now);
        chat.hold(now, s, Hold::Stream);
        let command = if i % 2 == 0 {
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
        let _ = chat.apply(now, Input::Command { session: s, command, act_as: None });
        while chat.poll_outbound().is_some() {}
        log += 3;
    }
    let started = Instant::now();
    let bytes = chat.snapshot().expect("snapshot");
    let wrote = started.elapsed();
    let started = Instant::now();
    let restored = Chat::restore(&bytes).expect("restore");
    let read = started.elapsed();
    println!(
        "{n} participants ({log} inputs): snapshot {} MB ({} bytes per participant), written in {:?}, restored in {:?}; {} participants back",
        bytes.len() / 1_000_000,
        bytes.len() / n.max(1),
        wrote,
        read,
        restored.stats().participants
    );
}
