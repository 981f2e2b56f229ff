//! The edge of the server holds against clients that play by the rules to exhaust it:
//! idle and trickling connections are closed, a huge `Content-Length` is refused at once,
//! a slow body times out, open connections are capped, one address cannot take every
//! session, a session that is never used expires, a hung client (SIGSTOP) is noticed,
//! and resume-token guesses are throttled. Long GET streams and blocking calls are not
//! cut by any of it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{RawSession, STEP, ServerProcess, SseEvents, TestClient, http, raw_post, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"edge","version":"1"}}}"#;

fn structured(response: &Value) -> Value {
    response["result"]["structuredContent"].clone()
}

/// The soft limit of open files of this process (the server inherits it).
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024)
}

/// How many hostile connections of each kind a test opens: 1,000, or fewer when the
/// open-file limit would not leave room for them (the test process and the server each
/// hold one descriptor per connection, plus their own).
fn hostile_connections() -> usize {
    1000.min(open_file_limit().saturating_sub(300) / 2 / 2).max(50)
}

/// Opens a TCP connection to `server`, retrying briefly while the backlog is full.
async fn connect(server: &ServerProcess) -> TcpStream {
    within(STEP, "connect", async {
        loop {
            match TcpStream::connect(server.addr).await {
                Ok(stream) => break stream,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
}

/// Waits until the server closes `stream` (EOF or an error), sending one more header
/// byte every `trickle` if set; `None` if it is still open after `limit`.
async fn closed_by_server(
    mut stream: TcpStream,
    trickle: Option<Duration>,
    limit: Duration,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 512];
    loop {
        let pause = trickle.unwrap_or(limit);
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(Instant::now()),
                Ok(_) => {} // a 408 or similar: keep reading until the close
            },
            () = tokio::time::sleep(pause) => {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                if trickle.is_some() && stream.write_all(b"x").await.is_err() {
                    return Some(Instant::now());
                }
            }
            () = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

/// Two rmcp clients in a room exchange one message; returns how long it took.
async fn chat_round(ann: &TestClient, bob: &TestClient, room: &str, n: usize) -> Duration {
    let sent = Instant::now();
    let text = format!("still here {n}");
    ann.ok("send_message", json!({"room_id": room, "message": text})).await;
    let got = bob.next("message.received", STEP).await;
    assert_eq!(got["message"], text.as_str());
    sent.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_are_closed_while_a_chat_goes_on() {
    let server = ServerProcess::start(&[
        "--header-timeout",
        "2s",
        "--idle-connection-timeout",
        "2s",
        "--rate-messages",
        "100000",
    ])
    .await;
    let ann = server.client().await;
    let bob = server.client().await;
    ann.ok("enter_queue", json!({})).await;
    let room = bob.ok("enter_queue", json!({})).await["room_id"].as_str().expect("room").to_owned();
    bob.next("chatroom.found", STEP).await;

    let n = hostile_connections();
    let opened = Instant::now();
    let mut watchers = Vec::with_capacity(2 * n);
    for i in 0..2 * n {
        let mut stream = connect(&server).await;
        let trickle = if i % 2 == 1 {
            // A request line and the start of a header, then one byte at a time.
            stream.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.expect("write");
            Some(Duration::from_millis(300))
        } else {
            None
        };
        watchers.push(tokio::spawn(closed_by_server(stream, trickle, Duration::from_secs(15))));
    }
    let open_took = opened.elapsed();

    // With all of them open, the chat carries on and a newcomer connects.
    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        slowest = slowest.max(chat_round(&ann, &bob, &room, round).await);
    }
    let newcomer = Instant::now();
    let carl = server.client().await;
    carl.ok("get_my_identity", json!({})).await;
    let newcomer = newcomer.elapsed();

    let mut still_open = 0;
    let mut last_close = Duration::ZERO;
    for watcher in watchers {
        match watcher.await.expect("watcher") {
            Some(at) => last_close = last_close.max(at.duration_since(opened)),
            None => still_open += 1,
        }
    }
    println!(
        "{n} idle + {n} trickling: opened in {open_took:?}, all closed {last_close:?} after the first \
         opened; chat round trip at most {slowest:?}; a new client connected in {newcomer:?}"
    );
    assert_eq!(still_open, 0, "connections still open after 15 s");
    // The last one opened at `open_took`; each is closed within the 2 s header timeout.
    assert!(last_close < open_took + Duration::from_secs(5), "closed only after {last_close:?}");
    assert!(slowest < Duration::from_secs(2), "a chat message took {slowest:?}");
    // The chat's own connections were not cut: it still works after the timeouts.
    chat_round(&ann, &bob, &room, 99).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_at_once_and_a_slow_body_times_out() {
    let server = ServerProcess::start(&["--body-timeout", "1s"]).await;
    let head = |length: u64| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let mut stream = connect(&server).await;
    let started = Instant::now();
    stream.write_all(head(10_000_000_000).as_bytes()).await.expect("write head");
    stream.write_all(&[b' '; 100]).await.expect("write 100 bytes");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    within(Duration::from_secs(2), "413 for a 10 GB Content-Length", reader.read_line(&mut status))
        .await
        .expect("read status");
    assert!(status.starts_with("HTTP/1.1 413"), "{status:?}");
    println!("10 GB Content-Length refused in {:?}", started.elapsed());

    // A body that stops halfway: 408 (or the connection closed) after the body timeout.
    let mut stream = connect(&server).await;
    let started = Instant::now();
    stream.write_all(head(200).as_bytes()).await.expect("write head");
    stream.write_all(&[b' '; 100]).await.expect("write half the body");
    let mut response = Vec::new();
    within(Duration::from_secs(4), "a stalled body is timed out", stream.read_to_end(&mut response))
        .await
        .ok();
    let took = started.elapsed();
    let response = String::from_utf8_lossy(&response);
    assert!(response.is_empty() || response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "took {took:?}");
    println!("a stalled body was answered {:?} after {took:?}", response.lines().next());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_at_once() {
    let server = ServerProcess::start(&["--max-connections", "20", "--header-timeout", "1500ms"]).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect(&server).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = Instant::now();
    let mut extra = connect(&server).await;
    let mut answer = Vec::new();
    within(Duration::from_secs(1), "the 21st connection is closed at once", extra.read_to_end(&mut answer))
        .await
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 503"), "{answer}");
    println!("the connection over the cap was closed after {:?}", refused.elapsed());
    // Once the idle ones time out, clients get in again.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let client = within(STEP, "connect after the idle ones are gone", server.client()).await;
    client.ok("get_my_identity", json!({})).await;
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_streams_and_blocking_calls_outlive_the_timeouts() {
    let server = ServerProcess::start(&[
        "--header-timeout",
        "300ms",
        "--idle-connection-timeout",
        "300ms",
        "--body-timeout",
        "300ms",
    ])
    .await;
    let mut ann = RawSession::open(&server.url, None).await;
    let mut stream = SseEvents::new(ann.open_stream().await);
    ann.call("checkin_client", json!({"client_id": "ann"})).await;
    let started = Instant::now();
    let waited = structured(&ann.call("wait_for_events", json!({"timeout": 1.5})).await);
    assert_eq!(waited["timed_out"], true, "{waited}");
    assert!(started.elapsed() >= Duration::from_millis(1400), "the wait was cut: {:?}", started.elapsed());
    // The GET stream, open all along, still carries events.
    let bob = server.client().await;
    bob.ok("checkin_client", json!({"client_id": "bob"})).await;
    bob.ok("send_message", json!({"recipient_id": "ann", "message": "still listening?"})).await;
    let (_, event) = stream.next_method("message.received").await;
    assert_eq!(event["params"]["message"], "still listening?", "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_session() {
    let server = ServerProcess::start(&["--max-sessions-per-address", "5"]).await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(RawSession::open(&server.url, None).await);
    }
    let refused = raw_post(&server.url, None, None, INIT).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().get("retry-after").is_some(), "{:?}", refused.headers());
    let body: Value = refused.json().await.expect("a JSON-RPC error");
    assert_eq!(body["error"]["code"], -32000, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("address")), "{body}");

    // A session that ends frees its place.
    let gone = sessions.pop().expect("a session");
    let deleted = http().delete(&server.url).header("mcp-session-id", &gone.id).send().await.expect("DELETE");
    assert!(deleted.status().is_success());
    RawSession::open(&server.url, None).await;
    let metrics = server.get("/metrics").await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("reason=\"sessions_per_address\""), "{metrics}");
}

/// A loop of `initialize` that never uses its sessions: they end after the single-call
/// timeout, so they neither count against the caps nor stay in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_are_never_used_expire_quickly() {
    let server =
        ServerProcess::start(&["--single-call-timeout", "500ms", "--max-sessions-per-address", "20"]).await;
    let mut unused = Vec::new();
    for _ in 0..20 {
        unused.push(RawSession::open(&server.url, None).await);
    }
    assert_eq!(raw_post(&server.url, None, None, INIT).await.status(), 503);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}).to_string();
    for session in &unused {
        assert_eq!(session.post_raw(&ping).await.status(), 404, "an unused session is gone");
    }
    let health: Value = server.get("/healthz").await.expect("healthz").json().await.expect("json");
    assert_eq!(health["counts"]["sessions"], 0, "{health}");
    RawSession::open(&server.url, None).await;
}

/// Not a test by itself: the child process that `a_stopped_client_*` SIGSTOPs. An rmcp
/// client (which answers the server's pings) enters the queue, reports its user id on
/// stdout and waits.
#[tokio::test]
#[ignore = "helper process for a_stopped_client_is_noticed"]
async fn pinged_child_client() {
    let Ok(url) = std::env::var("MCP_CHAT_CHILD_URL") else { return };
    let client = TestClient::connect(&url, None).await;
    let entered = client.ok("enter_queue", json!({"display_name": "Kid"})).await;
    println!("READY {}", entered["user_id"].as_str().unwrap_or_default());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").args([name, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {name} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_client_is_noticed_and_its_partner_told() {
    let server = ServerProcess::start(&[
        "--keepalive-ping",
        "300ms",
        "--ping-timeout",
        "700ms",
        "--stream-grace",
        "300ms",
        "--reconnect-grace",
        "1s",
    ])
    .await;
    let (mut child, kid_id) = tests::spawn_child_client("pinged_child_client", &server.url).await;
    let bob = server.client().await;
    let matched = bob.ok("enter_queue", json!({"display_name": "Bob"})).await;
    assert_eq!(matched["partner"]["user_id"], kid_id.as_str());
    // Several pings come and are answered: the child is alive and nothing happens.
    bob.none("partner.reconnecting", Duration::from_millis(1500)).await;

    let pid = child.id().expect("child pid");
    let stopped = Instant::now();
    signal(pid, "-STOP");
    let reconnecting = bob.next("partner.reconnecting", Duration::from_secs(6)).await;
    let noticed = stopped.elapsed();
    let gone = bob.next("partner.disconnected", Duration::from_secs(6)).await;
    let ended = stopped.elapsed();
    signal(pid, "-CONT");
    let _ = child.start_kill();
    assert_eq!(gone["reason"], "timeout", "{gone}");
    assert!(reconnecting["room_id"].is_string(), "{reconnecting}");
    println!("stopped client: partner.reconnecting after {noticed:?}, partner.disconnected after {ended:?}");
    // One ping period, the ping timeout and the stream grace, with slack.
    assert!(noticed < Duration::from_secs(4), "noticed only after {noticed:?}");
}

/// A client that never answers a ping (many do not) is judged as before, by its stream's
/// writes: its stream stays up while it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_pings_keeps_its_stream() {
    let server = ServerProcess::start(&[
        "--keepalive-ping",
        "200ms",
        "--ping-timeout",
        "300ms",
        "--stream-grace",
        "300ms",
    ])
    .await;
    let mut ann = RawSession::open(&server.url, None).await;
    let mut stream = SseEvents::new(ann.open_stream().await);
    ann.call("enter_queue", json!({"display_name": "Ann"})).await;
    let bob = server.client().await;
    let room = bob.ok("enter_queue", json!({"display_name": "Bob"})).await["room_id"].clone();
    let mut pings = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some((_, message)) = stream.try_next(Duration::from_millis(500)).await
            && message["method"] == "ping"
        {
            pings += 1;
        }
    }
    assert!(pings >= 4, "only {pings} pings in 2 s");
    bob.none("partner.reconnecting", Duration::from_millis(100)).await;
    bob.ok("send_message", json!({"room_id": room, "message": "hi"})).await;
    let (_, got) = stream.next_method("message.received").await;
    assert_eq!(got["params"]["message"], "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_token_guesses_are_throttled() {
    let server = ServerProcess::start(&["--max-bad-tokens", "3", "--bad-token-window", "2s"]).await;
    let owner = server.client().await;
    let token = owner.ok("checkin_client", json!({"client_id": "owner"})).await["resume_token"].clone();
    owner.close().await;

    let eve = server.client().await;
    let wrong = "rt_00000000000000000000000000000000";
    let guesses = [
        ("resume_session", json!({"user_id": "owner", "resume_token": wrong})),
        ("checkin_client", json!({"client_id": "owner", "resume_token": wrong})),
        ("enter_queue", json!({"user_id": "owner", "resume_token": wrong})),
    ];
    for (tool, args) in &guesses {
        let refused = eve.err(tool, args.clone()).await;
        assert_eq!(refused["error"], "bad_resume_token", "{tool}: {refused}");
    }
    // The budget is spent: every call with a token is refused now, the right one too.
    for (tool, args) in &guesses {
        let throttled = eve.err(tool, args.clone()).await;
        assert_eq!(throttled["error"], "too_many_bad_tokens", "{tool}: {throttled}");
        assert!(throttled["message"].as_str().is_some_and(|m| m.contains("retry")), "{throttled}");
    }
    let right = json!({"client_id": "owner", "resume_token": token});
    assert_eq!(eve.err("checkin_client", right.clone()).await["error"], "too_many_bad_tokens");
    // Calls without a token are not affected.
    eve.ok("get_my_identity", json!({})).await;

    // The budget refills (3 per 2 s): the owner's token works again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let back = eve.ok("checkin_client", right).await;
    assert_eq!(back["client_id"], "owner", "{back}");
}
