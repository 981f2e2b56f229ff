//! The transport floor: a bare axum relay speaking the same wire format as the server
//! for the handful of tools the scenarios use, with no MCP framework and no chat logic
//! beyond a lookup. The same generator measures it in the same run, so the server's
//! figures can be read as a multiple of what HTTP + SSE + JSON cost on this machine.
//!
//! What it does: `initialize` (SSE answer + `Mcp-Session-Id`), notifications and
//! responses (202), a GET stream per session, DELETE; tools `enter_queue` (first come,
//! first served), `send_message` (room or `recipient_id`), `checkin_client`,
//! `wait_for_events` (for sessions without a GET stream), `get_messages` (always empty).
//! Events go to the GET stream when one is open, otherwise to a backlog for polling.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use futures::stream;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};

use crate::cli::FloorServerArgs;
use crate::error::Result;
use crate::wire::PROTOCOL_VERSION;

/// The stdout line announcing the endpoint (followed by the URL).
pub const LISTENING: &str = "floor listening on ";

/// Serves until the process is killed.
pub async fn serve(args: FloorServerArgs) -> Result<()> {
    let floor = Arc::new(Floor::default());
    let app = Router::new()
        .route("/mcp", get(open_stream).post(post).delete(delete))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
    println!("{LISTENING}http://{}/mcp", listener.local_addr()?);
    // Like the server: without TCP_NODELAY, a response written in pieces can wait for
    // the peer's delayed ACK (tens of milliseconds).
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// All sessions, the queue, rooms and client ids, under one lock held only for lookups.
#[derive(Default)]
struct Floor {
    tables: Mutex<Tables>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Tables {
    sessions: HashMap<Arc<str>, Arc<Peer>>,
    waiting: Option<Arc<Peer>>,
    rooms: HashMap<Arc<str>, [Arc<Peer>; 2]>,
    clients: HashMap<String, Arc<Peer>>,
}

/// One session.
struct Peer {
    session_id: Arc<str>,
    inbox: Mutex<Inbox>,
    wake: Notify,
}

struct Inbox {
    /// The identity others see (`u_<n>`, or the client id after check-in).
    name: Arc<str>,
    seq: u64,
    stream: Option<mpsc::UnboundedSender<String>>,
    backlog: VecDeque<Value>,
    /// Rooms this session is in, to forget them when it ends.
    rooms: Vec<Arc<str>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Floor {
    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn peer(&self, headers: &HeaderMap) -> std::result::Result<Arc<Peer>, StatusCode> {
        let id =
            headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).ok_or(StatusCode::BAD_REQUEST)?;
        lock(&self.tables).sessions.get(id).cloned().ok_or(StatusCode::NOT_FOUND)
    }
}

impl Peer {
    fn name(&self) -> Arc<str> {
        lock(&self.inbox).name.clone()
    }

    /// Numbers the event and pushes it on the GET stream, or keeps it for polling.
    fn deliver(&self, mut params: Map<String, Value>) {
        let mut inbox = lock(&self.inbox);
        inbox.seq += 1;
        params.insert("seq".into(), json!(inbox.seq));
        let method = params.get("type").cloned().unwrap_or(Value::Null);
        let params = Value::Object(params);
        if let Some(tx) = &inbox.stream {
            let note = json!({"jsonrpc": "2.0", "method": method, "params": params});
            if tx.send(note.to_string()).is_ok() {
                return;
            }
            inbox.stream = None;
        }
        inbox.backlog.push_back(params);
        drop(inbox);
        self.wake.notify_waiters();
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An SSE body holding a priming event and one JSON-RPC message, like the server's.
fn sse_answer(message: Value) -> Response {
    let events = [
        SseEvent::default().id("0").retry(Duration::from_secs(3)).data(""),
        SseEvent::default().data(message.to_string()),
    ];
    Sse::new(stream::iter(events.map(Ok::<_, Infallible>))).into_response()
}

async fn post(State(floor): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let method = message.get("method").and_then(Value::as_str);
    let Some(id) = message.get("id").cloned().filter(|_| method.is_some()) else {
        // A notification or a response: nothing to answer.
        return StatusCode::ACCEPTED.into_response();
    };
    if method == Some("initialize") {
        let n = floor.next();
        let session_id: Arc<str> = format!("floor-{n}").into();
        let peer = Arc::new(Peer {
            session_id: session_id.clone(),
            inbox: Mutex::new(Inbox {
                name: format!("u_{n}").into(),
                seq: 0,
                stream: None,
                backlog: VecDeque::new(),
                rooms: Vec::new(),
            }),
            wake: Notify::new(),
        });
        lock(&floor.tables).sessions.insert(session_id.clone(), peer);
        let result = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "chat-load-floor", "version": env!("CARGO_PKG_VERSION")}
        });
        let mut response = sse_answer(json!({"jsonrpc": "2.0", "id": id, "result": result}));
        if let Ok(value) = session_id.parse() {
            response.headers_mut().insert("mcp-session-id", value);
        }
        return response;
    }
    let peer = match floor.peer(&headers) {
        Ok(peer) => peer,
        Err(status) => return status.into_response(),
    };
    let answer = match method {
        Some("tools/call") => {
            let params = message.get("params").cloned().unwrap_or_default();
            let name = params.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let arguments = params.get("arguments").cloned().unwrap_or_default();
            let (is_error, data) = call_tool(&floor, &peer, &name, arguments).await;
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": if is_error { "error" } else { "ok" }}],
                "structuredContent": data,
                "isError": is_error,
            }})
        }
        Some("ping") => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        _ => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}),
    };
    sse_answer(answer)
}

/// The tools: `(isError, structuredContent)`.
async fn call_tool(floor: &Floor, me: &Arc<Peer>, name: &str, args: Value) -> (bool, Value) {
    let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::to_owned);
    match name {
        "enter_queue" => {
            let partner = {
                let mut tables = lock(&floor.tables);
                match tables.waiting.take() {
                    Some(waiting) if !Arc::ptr_eq(&waiting, me) => {
                        let room: Arc<str> = format!("r_{}", floor.next()).into();
                        tables.rooms.insert(room.clone(), [waiting.clone(), me.clone()]);
                        Some((waiting, room))
                    }
                    _ => {
                        tables.waiting = Some(me.clone());
                        None
                    }
                }
            };
            let my_name = me.name();
            match partner {
                Some((waiting, room)) => {
                    lock(&me.inbox).rooms.push(room.clone());
                    lock(&waiting.inbox).rooms.push(room.clone());
                    let waiting_name = waiting.name();
                    waiting.deliver(object(json!({
                        "type": "chatroom.found", "room_id": &*room,
                        "partner": {"user_id": &*my_name, "display_name": &*my_name}, "shared_interests": []
                    })));
                    (
                        false,
                        json!({
                            "user_id": &*my_name, "status": "matched", "room_id": &*room,
                            "partner": {"user_id": &*waiting_name, "display_name": &*waiting_name}
                        }),
                    )
                }
                None => (
                    false,
                    json!({"user_id": &*my_name, "status": "waiting", "position": 1, "queue_length": 1}),
                ),
            }
        }
        "send_message" => {
            let message = text("message").unwrap_or_default();
            let (target, room) = {
                let tables = lock(&floor.tables);
                match (text("room_id"), text("recipient_id")) {
                    (Some(room), _) => {
                        let other = tables.rooms.get(room.as_str()).and_then(|[a, b]| {
                            if Arc::ptr_eq(a, me) {
                                Some(b.clone())
                            } else if Arc::ptr_eq(b, me) {
                                Some(a.clone())
                            } else {
                                None
                            }
                        });
                        (other, Some(room))
                    }
                    (None, Some(client)) => (tables.clients.get(&client).cloned(), None),
                    (None, None) => (None, None),
                }
            };
            let Some(target) = target else {
                return (true, json!({"error": "unknown_target", "message": "no such room or client"}));
            };
            let from = me.name();
            let message_id = format!("m_{}", floor.next());
            let mut event = object(json!({
                "type": "message.received", "message_id": &message_id, "from": &*from, "from_name": &*from,
                "message": message, "timestamp": unix_ms()
            }));
            if let Some(room) = &room {
                event.insert("room_id".into(), json!(room));
            }
            target.deliver(event);
            (false, json!({"message_id": message_id, "room_id": room, "timestamp": unix_ms()}))
        }
        "checkin_client" => {
            let Some(client) = text("client_id") else {
                return (true, json!({"error": "invalid_arguments", "message": "client_id is required"}));
            };
            lock(&me.inbox).name = client.as_str().into();
            lock(&floor.tables).clients.insert(client.clone(), me.clone());
            (false, json!({"client_id": client, "name": client}))
        }
        "wait_for_events" => {
            let after = args.get("after_seq").and_then(Value::as_u64).unwrap_or(0);
            let limit =
                args.get("limit").and_then(Value::as_u64).map_or(100, |l| usize::try_from(l).unwrap_or(100));
            let wait = args.get("timeout").and_then(Value::as_f64).unwrap_or(25.0).clamp(0.0, 50.0);
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
            loop {
                let woken = me.wake.notified();
                {
                    let mut inbox = lock(&me.inbox);
                    inbox.backlog.retain(|e| e.get("seq").and_then(Value::as_u64).unwrap_or(0) > after);
                    if !inbox.backlog.is_empty() || tokio::time::Instant::now() >= deadline {
                        let events: Vec<Value> = inbox.backlog.iter().take(limit.max(1)).cloned().collect();
                        return (
                            false,
                            json!({"events": events, "last_seq": inbox.seq, "pending": inbox.backlog.len()}),
                        );
                    }
                }
                let _ = tokio::time::timeout_at(deadline, woken).await;
            }
        }
        "get_messages" => (false, json!({"messages": [], "remaining": 0})),
        other => (
            true,
            json!({"error": "unknown_tool", "message": format!("the floor relay has no tool {other}")}),
        ),
    }
}

async fn open_stream(State(floor): State<Arc<Floor>>, headers: HeaderMap) -> Response {
    let peer = match floor.peer(&headers) {
        Ok(peer) => peer,
        Err(status) => return status.into_response(),
    };
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    {
        // Anything that arrived before the stream opened goes out first.
        let mut inbox = lock(&peer.inbox);
        for params in inbox.backlog.drain(..) {
            let method = params.get("type").cloned().unwrap_or(Value::Null);
            let _ = tx.send(json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string());
        }
        inbox.stream = Some(tx);
    }
    let events = stream::unfold(rx, |mut rx| async move {
        let text = rx.recv().await?;
        Some((Ok::<_, Infallible>(SseEvent::default().data(text)), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

async fn delete(State(floor): State<Arc<Floor>>, headers: HeaderMap) -> StatusCode {
    let peer = match floor.peer(&headers) {
        Ok(peer) => peer,
        Err(status) => return status,
    };
    {
        let mut tables = lock(&floor.tables);
        tables.sessions.remove(&peer.session_id);
        if tables.waiting.as_ref().is_some_and(|w| Arc::ptr_eq(w, &peer)) {
            tables.waiting = None;
        }
        let (name, rooms) = {
            let mut inbox = lock(&peer.inbox);
            (inbox.name.clone(), std::mem::take(&mut inbox.rooms))
        };
        if tables.clients.get(&*name).is_some_and(|c| Arc::ptr_eq(c, &peer)) {
            tables.clients.remove(&*name);
        }
        for room in rooms {
            tables.rooms.remove(&room);
        }
    }
    // Dropping the sender ends the GET stream.
    lock(&peer.inbox).stream = None;
    peer.wake.notify_waiters();
    StatusCode::OK
}
