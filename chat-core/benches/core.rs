//! Hot paths of the core with 100,000 participants present:
//! - `relay`: one room message sent and pushed (the target is >= 1 M/s on one core);
//! - `match`: two participants enter the queue, are matched, and one leaves;
//! - `direct`: a direct message sent, then fetched by its recipient.
//!
//! Run with `cargo bench -p chat-core --bench core`; criterion prints time per
//! operation and throughput (elements/s = operations/s).

use std::hint::black_box;
use std::time::Duration;

use chat_core::{Chat, Command, Config, Limits, Reply, SessionId, Time};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PARTICIPANTS: usize = 100_000;
/// Rooms the relay benchmark rotates over (the rest of the participants sit idle).
const HOT_ROOMS: usize = 1_000;

fn limits() -> Limits {
    Limits {
        rate_messages: u32::MAX,
        rematch_cooldown: Duration::ZERO,
        history_retention: Duration::ZERO,
        message_ttl: Duration::from_millis(1),
        // Receivers in this benchmark never acknowledge, so inboxes run full and every
        // push also evicts the oldest event: the worst case for the relay path.
        event_buffer: 128,
        ..Limits::default()
    }
}

fn ok(chat: &mut Chat, now: Time, s: SessionId, cmd: Command) -> Reply {
    chat.handle(now, s, cmd).expect("benchmark command succeeds")
}

/// A chat with `PARTICIPANTS` checked-in clients; returns their sessions.
fn populated() -> (Chat, Time, Vec<SessionId>) {
    let mut chat = Chat::new(Config { seed: [5; 32], limits: limits(), registered: Vec::new() });
    let now = Time::from_millis(1_704_110_400_000);
    let sessions: Vec<SessionId> = (0..PARTICIPANTS)
        .map(|i| {
            let s = chat.open_session(now);
            ok(
                &mut chat,
                now,
                s,
                Command::Checkin {
                    client_id: format!("client-{i}"),
                    name: None,
                    capabilities: vec![],
                    resume_token: None,
                },
            );
            s
        })
        .collect();
    (chat, now, sessions)
}

fn drain(chat: &mut Chat) {
    while let Some(out) = chat.poll_outbound() {
        black_box(out);
    }
}

fn enter() -> Command {
    Command::EnterQueue { user_id: None, display_name: None, interests: vec![], resume_token: None }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(1));

    // relay: pair up HOT_ROOMS rooms, then send round-robin over them.
    let (mut chat, now, sessions) = populated();
    let mut rooms = Vec::with_capacity(HOT_ROOMS);
    for pair in sessions.chunks(2).take(HOT_ROOMS) {
        ok(&mut chat, now, pair[0], enter());
        if let Reply::EnterQueue(r) = ok(&mut chat, now, pair[1], enter())
            && let chat_core::QueueStatus::Matched { room_id, .. } = r.status
        {
            rooms.push((pair[0], room_id.to_string()));
        }
    }
    drain(&mut chat);
    assert_eq!(rooms.len(), HOT_ROOMS);
    let mut i = 0usize;
    group.bench_function("relay", |b| {
        b.iter(|| {
            let (s, room) = &rooms[i % HOT_ROOMS];
            i += 1;
            let cmd = Command::SendRoom {
                room_id: room.clone(),
                message: "hello there".into(),
                client_message_id: None,
            };
            black_box(chat.handle(now, *s, cmd).expect("send"));
            drain(&mut chat);
        })
    });

    // match: two idle participants enter, are matched; the first leaves at once.
    let (mut chat, now, sessions) = populated();
    let mut i = 0usize;
    group.bench_function("enter_queue_match", |b| {
        b.iter(|| {
            let (a, z) = (sessions[i % PARTICIPANTS], sessions[(i + 1) % PARTICIPANTS]);
            i += 2;
            ok(&mut chat, now, a, enter());
            let Reply::EnterQueue(r) = ok(&mut chat, now, z, enter()) else { panic!("enter reply") };
            let chat_core::QueueStatus::Matched { room_id, .. } = r.status else { panic!("not matched") };
            ok(&mut chat, now, a, Command::LeaveChat { room_id: room_id.to_string(), requeue: false });
            drain(&mut chat);
        })
    });

    // direct: client i sends to client i+1, which fetches it; time moves 1 ms per op so
    // expiry timers come due (and find the message already fetched).
    let (mut chat, mut now, sessions) = populated();
    let mut i = 0usize;
    group.bench_function("direct_send_fetch", |b| {
        b.iter(|| {
            let (from, to) = (sessions[i % PARTICIPANTS], sessions[(i + 1) % PARTICIPANTS]);
            let recipient = format!("client-{}", (i + 1) % PARTICIPANTS);
            i += 1;
            now = now.plus(Duration::from_millis(1));
            ok(
                &mut chat,
                now,
                from,
                Command::SendDirect {
                    recipient_id: recipient,
                    message: "ping".into(),
                    client_message_id: None,
                },
            );
            black_box(ok(&mut chat, now, to, Command::GetMessages { limit: None }));
            drain(&mut chat);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
