//! The real `chat-mcp-stdio-bridge` binary against a fake Streamable HTTP MCP
//! server written here with axum. The fake is deliberately raw: it builds
//! every response as text and echoes ids and params verbatim, so these tests
//! can check the bridge's output byte for byte (a bridge that re-serializes
//! messages turns `2.50` into `2.5` and mangles 23-digit ids).

mod common_bridge;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::post;
use common_bridge::{BridgeProc, WAIT};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};

const PROTOCOL: &str = "2025-06-18";
const UNKNOWN: &str = r#""x-unknown":{"keep":[1,2.50,"z"],"nested":{"deep":null}}"#;
const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"x-host-cap":{"a":1}},"clientInfo":{"name":"test-host","version":"1.0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------- fake server

/// One HTTP request the fake received.
#[derive(Debug, Clone)]
struct Hit {
    method: Method,
    headers: HeaderMap,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn rpc_method(&self) -> Option<String> {
        self.json().get("method").and_then(Value::as_str).map(str::to_owned)
    }
}

#[derive(Default)]
struct FakeInner {
    sessions: Mutex<HashSet<String>>,
    next_session: AtomicU64,
    hits: Mutex<Vec<Hit>>,
    hit: Notify,
    /// Sink of the currently open GET stream.
    get_tx: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
    get_not_allowed: AtomicBool,
    init_as_json: AtomicBool,
    slow_release: Notify,
    /// Raw id of the last `test/cut` request (answered on resume).
    cut_id: Mutex<Option<String>>,
}

#[derive(Clone, Default)]
struct Fake(Arc<FakeInner>);

impl Fake {
    async fn start() -> (Fake, String) {
        let fake = Fake::default();
        let app =
            Router::new().route("/mcp", post(on_post).get(on_get).delete(on_delete)).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (fake, format!("http://{addr}/mcp"))
    }

    /// The same fake behind TLS, with a certificate for `localhost` issued by a fresh CA;
    /// returns the CA's PEM too.
    async fn start_tls() -> (Fake, String, String) {
        let ca_params = {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, "bridge test CA");
            params
        };
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let server = server_params.signed_by(&server_key, &ca, &ca_key).expect("server cert");
        let tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![server.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let fake = Fake::default();
        let app =
            Router::new().route("/mcp", post(on_post).get(on_get).delete(on_delete)).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ =
                        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                });
            }
        });
        (fake, format!("https://localhost:{port}/mcp"), ca.pem())
    }

    fn record(&self, method: Method, headers: &HeaderMap, body: &str) {
        if let Ok(mut hits) = self.0.hits.lock() {
            hits.push(Hit { method, headers: headers.clone(), body: body.to_string() });
        }
        self.0.hit.notify_waiters();
    }

    fn hits(&self) -> Vec<Hit> {
        self.0.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Waits (bounded) until `n` requests matching `pred` were received.
    async fn wait_hits(&self, n: usize, pred: impl Fn(&Hit) -> bool) -> Vec<Hit> {
        let wait = async {
            loop {
                let notified = self.0.hit.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let found: Vec<Hit> = self.hits().into_iter().filter(|h| pred(h)).collect();
                if found.len() >= n {
                    return found;
                }
                notified.await;
            }
        };
        match tokio::time::timeout(WAIT, wait).await {
            Ok(found) => found,
            Err(_) => panic!("fake server: expected {n} matching requests; got {:#?}", self.hits()),
        }
    }

    async fn wait_get(&self, n: usize) -> Hit {
        let gets = self.wait_hits(n, |h| h.method == Method::GET).await;
        gets[n - 1].clone()
    }

    /// Sends one raw SSE frame on the open GET stream.
    fn push_get(&self, frame: String) {
        let tx = self.0.get_tx.lock().ok().and_then(|t| t.clone());
        let tx = tx.expect("no GET stream is open");
        tx.send(Bytes::from(frame)).expect("GET stream closed");
    }

    /// Ends the GET stream, like a dropped connection.
    fn drop_get(&self) {
        if let Ok(mut tx) = self.0.get_tx.lock() {
            *tx = None;
        }
    }

    /// Forgets all sessions, like a restarted server.
    fn expire_sessions(&self) {
        if let Ok(mut s) = self.0.sessions.lock() {
            s.clear();
        }
    }

    fn session_ok(&self, headers: &HeaderMap) -> Result<String, StatusCode> {
        let sid =
            headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).ok_or(StatusCode::BAD_REQUEST)?;
        let known = self.0.sessions.lock().map(|s| s.contains(sid)).unwrap_or(false);
        if known { Ok(sid.to_string()) } else { Err(StatusCode::NOT_FOUND) }
    }
}

fn status(code: StatusCode) -> Response {
    Response::builder().status(code).body(Body::empty()).expect("response")
}

fn json_response(body: String) -> Response {
    Response::builder().header("content-type", "application/json").body(Body::from(body)).expect("response")
}

fn sse_response(frames: Vec<String>, session: Option<&str>) -> Response {
    let stream = futures::stream::iter(frames.into_iter().map(|f| Ok::<_, Infallible>(Bytes::from(f))));
    let mut builder =
        Response::builder().header("content-type", "text/event-stream").header("cache-control", "no-cache");
    if let Some(sid) = session {
        builder = builder.header("mcp-session-id", sid);
    }
    builder.body(Body::from_stream(stream)).expect("response")
}

fn frame(id: &str, data: &str) -> String {
    let mut f = format!("id: {id}\n");
    for line in data.split('\n') {
        f.push_str("data: ");
        f.push_str(line);
        f.push('\n');
    }
    f.push('\n');
    f
}

/// Raw text of a top-level member of a JSON object.
fn raw_member(body: &str, key: &str) -> Option<String> {
    let members: std::collections::HashMap<String, Box<RawValue>> = serde_json::from_str(body).ok()?;
    members.get(key).map(|v| v.get().to_string())
}

fn echo_result(id: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"echo":{params},{UNKNOWN}}}}}"#)
}

fn progress(n: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"tok","progress":{n},"x-extra":true}}}}"#
    )
}

async fn on_post(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    fake.record(Method::POST, &headers, &body);
    let Ok(value) = serde_json::from_str::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let method = value.get("method").and_then(Value::as_str).unwrap_or("");
    let id = raw_member(&body, "id");
    let params = raw_member(&body, "params").unwrap_or_else(|| "null".into());

    if method == "initialize" {
        let n = fake.0.next_session.fetch_add(1, Ordering::SeqCst) + 1;
        let sid = format!("s{n}");
        if let Ok(mut s) = fake.0.sessions.lock() {
            s.insert(sid.clone());
        }
        let id = id.unwrap_or_else(|| "null".into());
        let result = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"{PROTOCOL}","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"fake","version":"0"}},{UNKNOWN}}}}}"#
        );
        if fake.0.init_as_json.load(Ordering::SeqCst) {
            let mut resp = json_response(result);
            resp.headers_mut().insert("mcp-session-id", sid.parse().expect("header"));
            return resp;
        }
        // Like rmcp: a priming event without data, then the response.
        let priming = format!("id: 0/{n}\nretry: 50\ndata: \n\n");
        return sse_response(vec![priming, frame(&format!("1/{n}"), &result)], Some(&sid));
    }
    if let Err(code) = fake.session_ok(&headers) {
        return status(code);
    }
    let Some(id) = id.filter(|_| !method.is_empty()) else {
        // notification or response
        return status(StatusCode::ACCEPTED);
    };
    match method {
        "test/echo_json" => json_response(echo_result(&id, &params)),
        "test/echo_sse" => {
            let request = r#"{"jsonrpc":"2.0","id":"srv-req-1","method":"ping"}"#;
            // The response spans several `data:` lines.
            let response = echo_result(&id, &params).replacen(",", ",\n", 2);
            sse_response(
                vec![
                    ": keep-alive comment\n\n".to_string(),
                    frame("p-1", &progress(1)),
                    frame("p-2", request),
                    frame("p-3", &response),
                ],
                None,
            )
        }
        "test/batch" => json_response(format!(
            r#"[{},{}]"#,
            progress(7),
            echo_result(&id, &params)
        )),
        "test/hang" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            json_response(echo_result(&id, &params))
        }
        "test/slow" => {
            let _ = tokio::time::timeout(WAIT, fake.0.slow_release.notified()).await;
            json_response(echo_result(&id, &params))
        }
        "test/cut" => {
            if let Ok(mut cut) = fake.0.cut_id.lock() {
                *cut = Some(id.clone());
            }
            // Ends before the response; the rest comes on resume (GET).
            sse_response(
                vec!["id: c-0\nretry: 20\ndata:\n\n".into(), frame("c-1", &progress(1))],
                None,
            )
        }
        "test/rpc_error" => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/json")
            .body(Body::from(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32602,"message":"bad params","data":{{"x":2.50}}}}}}"#
            )))
            .expect("response"),
        _ => json_response(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)),
    }
}

async fn on_get(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    fake.record(Method::GET, &headers, "");
    if fake.0.get_not_allowed.load(Ordering::SeqCst) {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    if let Err(code) = fake.session_ok(&headers) {
        return status(code);
    }
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(last) = last.filter(|l| l.starts_with("c-")) {
        // Resuming the cut POST stream: replay inclusively (a duplicate of
        // c-1, as rmcp does), then the response.
        assert_eq!(last, "c-1");
        let id = fake.0.cut_id.lock().ok().and_then(|c| c.clone()).unwrap_or_else(|| "null".into());
        let response = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"resumed":true}}}}"#);
        return sse_response(vec![frame("c-1", &progress(1)), frame("c-2", &response)], None);
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    // rmcp-like priming event; its id collides with the first real event.
    let _ = tx.send(Bytes::from("id: 0\nretry: 50\ndata:\n\n"));
    if let Ok(mut slot) = fake.0.get_tx.lock() {
        *slot = Some(tx);
    }
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) },
        );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn on_delete(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    fake.record(Method::DELETE, &headers, "");
    if let Some(sid) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
        && let Ok(mut s) = fake.0.sessions.lock()
    {
        s.remove(sid);
    }
    status(StatusCode::OK)
}

// -------------------------------------------------------------------- helpers

fn spawn_bridge(url: &str) -> BridgeProc {
    BridgeProc::spawn(&["--url", url], &[])
}

/// initialize + initialized; returns the raw initialize response line.
async fn handshake(bridge: &mut BridgeProc) -> String {
    bridge.send(INIT).await;
    let line = bridge.recv_line().await;
    bridge.send(INITIALIZED).await;
    line
}

fn expected_init_response(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"{PROTOCOL}","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"fake","version":"0"}},{UNKNOWN}}}}}"#
    )
}

fn request(id: &str, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

// ---------------------------------------------------------------------- tests

#[tokio::test]
async fn ids_and_unknown_fields_pass_through_byte_for_byte() {
    let (fake, url) = Fake::start().await;
    fake.0.init_as_json.store(true, Ordering::SeqCst);
    let mut bridge = spawn_bridge(&url);
    assert_eq!(handshake(&mut bridge).await, expected_init_response("0"));

    let params = r#"{"n":1.0,"weird":[2.50,-0,1E3],"s":"a\u00e9\n","x-field":{"k":[]}}"#;
    let ids =
        ["1", "0", "-7", "12345678901234567890123", "1.5", r#""abc""#, r#""ünï \"quoted\" \u2028""#, r#""""#];
    for id in ids {
        let line = request(id, "test/echo_json", params);
        bridge.send(&line).await;
        assert_eq!(bridge.recv_line().await, echo_result(id, params), "id {id}");
        // the server received the host's exact bytes
        let posted = fake.wait_hits(1, |h| h.body == line).await.pop().expect("posted");
        assert_eq!(posted.header("mcp-session-id"), Some("s1"));
        assert_eq!(posted.header("mcp-protocol-version"), Some(PROTOCOL));
        assert_eq!(posted.header("accept"), Some("application/json, text/event-stream"));
    }

    // A JSON batch from the server becomes one line per message.
    bridge.send(&request("\"b\"", "test/batch", "{}")).await;
    assert_eq!(bridge.recv_line().await, progress(7));
    assert_eq!(bridge.recv_line().await, echo_result("\"b\"", "{}"));

    // A non-2xx reply carrying a JSON-RPC error for the request is relayed.
    bridge.send(&request("31", "test/rpc_error", "{}")).await;
    assert_eq!(
        bridge.recv_line().await,
        r#"{"jsonrpc":"2.0","id":31,"error":{"code":-32602,"message":"bad params","data":{"x":2.50}}}"#
    );
    bridge.expect_silence(QUIET).await;
}

#[tokio::test]
async fn sse_post_stream_relays_progress_server_request_and_response_in_order() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    // SSE initialize with an rmcp-style priming event
    assert_eq!(handshake(&mut bridge).await, expected_init_response("0"));

    let params = r#"{"big":12345678901234567890123,"f":2.50}"#;
    bridge.send(&request("12345678901234567890123", "test/echo_sse", params)).await;
    assert_eq!(bridge.recv_line().await, progress(1));
    assert_eq!(bridge.recv_line().await, r#"{"jsonrpc":"2.0","id":"srv-req-1","method":"ping"}"#);
    // multi-line `data:` is joined into one line; only whitespace differs
    assert_eq!(
        bridge.recv_line().await,
        echo_result("12345678901234567890123", params).replacen(",", ", ", 2)
    );

    // The host answers the server's request; the answer reaches the server.
    let answer = r#"{"jsonrpc":"2.0","id":"srv-req-1","result":{"x-host":[1.0]}}"#;
    bridge.send(answer).await;
    let hit = fake.wait_hits(1, |h| h.body == answer).await.pop().expect("hit");
    assert_eq!(hit.header("mcp-session-id"), Some("s1"));
    bridge.expect_silence(QUIET).await;
}

#[tokio::test]
async fn get_stream_delivers_server_requests_and_custom_notifications_with_auth_headers() {
    let (fake, url) = Fake::start().await;
    // Everything from the environment this time: URL, and several headers
    // in MCP_CHAT_HEADERS (one per line) with ${VAR} substitution.
    let mut bridge = BridgeProc::spawn(
        &["--auth-token", "tok-123"],
        &[
            ("MCP_CHAT_URL", url.as_str()),
            ("BRIDGE_TEST_API_KEY", "456"),
            (
                "MCP_CHAT_HEADERS",
                "X-Api-Key: key-${BRIDGE_TEST_API_KEY}\nX-Env-One: 1\nX-Env-Two: two ${BRIDGE_TEST_API_KEY}",
            ),
        ],
    );
    handshake(&mut bridge).await;
    let get = fake.wait_get(1).await;
    assert_eq!(get.header("accept"), Some("text/event-stream"));
    assert_eq!(get.header("mcp-session-id"), Some("s1"));
    assert_eq!(get.header("mcp-protocol-version"), Some(PROTOCOL));
    for hit in fake.hits() {
        assert_eq!(hit.header("authorization"), Some("Bearer tok-123"), "{hit:?}");
        assert_eq!(hit.header("x-api-key"), Some("key-456"), "{hit:?}");
        assert_eq!(hit.header("x-env-one"), Some("1"), "{hit:?}");
        assert_eq!(hit.header("x-env-two"), Some("two 456"), "{hit:?}");
    }
    // initialize went out without a session id
    let init = fake.wait_hits(1, |h| h.rpc_method().as_deref() == Some("initialize")).await;
    assert_eq!(init[0].header("mcp-session-id"), None);

    // server -> client request on the GET stream, and the host's answer
    let ping = r#"{"jsonrpc":"2.0","id":99,"method":"ping","params":{"x-y":2.50}}"#;
    fake.push_get(frame("0", ping)); // same id as the priming event
    assert_eq!(bridge.recv_line().await, ping);
    let pong = r#"{"jsonrpc":"2.0","id":99,"result":{}}"#;
    bridge.send(pong).await;
    let hit = fake.wait_hits(1, |h| h.body == pong).await.pop().expect("hit");
    assert_eq!(hit.header("mcp-session-id"), Some("s1"));
    assert_eq!(hit.header("authorization"), Some("Bearer tok-123"));

    let chat =
        r#"{"jsonrpc":"2.0","method":"chatroom.found","params":{"seq":1,"room_id":"r1","extra":{"a":[]}}}"#;
    fake.push_get(frame("1", chat));
    assert_eq!(bridge.recv_line().await, chat);
    bridge.expect_silence(QUIET).await;
}

#[tokio::test]
async fn get_stream_reconnects_with_last_event_id_and_drops_duplicates() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;
    fake.wait_get(1).await;

    let n = |seq: u32| {
        format!(r#"{{"jsonrpc":"2.0","method":"message.received","params":{{"seq":{seq},"text":"m{seq}"}}}}"#)
    };
    fake.push_get(frame("1", &n(1)));
    fake.push_get(frame("2", &n(2)));
    assert_eq!(bridge.recv_line().await, n(1));
    assert_eq!(bridge.recv_line().await, n(2));

    fake.drop_get();
    let second = fake.wait_get(2).await;
    assert_eq!(second.header("last-event-id"), Some("2"));
    assert_eq!(second.header("mcp-session-id"), Some("s1"));

    // Replay like a real server: inclusive (event 2 again), plus an old
    // message under a new event id (same seq, same content), then new ones.
    fake.push_get(frame("2", &n(2)));
    fake.push_get(frame("1b", &n(1)));
    fake.push_get(frame("3", &n(3)));
    assert_eq!(bridge.recv_line().await, n(3));
    // same seq but different content is a different message: delivered
    let changed = r#"{"jsonrpc":"2.0","method":"message.received","params":{"seq":3,"text":"edited"}}"#;
    fake.push_get(frame("4", changed));
    assert_eq!(bridge.recv_line().await, changed);
    bridge.expect_silence(QUIET).await;
}

#[tokio::test]
async fn expired_session_is_renewed_and_the_request_retried_once() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;
    fake.wait_get(1).await;

    fake.expire_sessions();
    let line = request(r#""after-expiry""#, "test/echo_json", r#"{"k":2.50}"#);
    bridge.send(&line).await;

    let warning = bridge.recv().await;
    assert_eq!(warning["method"], "notifications/message", "{warning}");
    assert_eq!(warning["params"]["level"], "warning");
    assert_eq!(warning["params"]["logger"], "chat-mcp-stdio-bridge");
    assert!(warning.get("id").is_none());
    assert_eq!(bridge.recv_line().await, echo_result(r#""after-expiry""#, r#"{"k":2.50}"#));
    // the replayed initialize's response is not forwarded
    bridge.expect_silence(QUIET).await;

    let inits = fake.wait_hits(2, |h| h.rpc_method().as_deref() == Some("initialize")).await;
    assert_eq!(inits.len(), 2, "exactly one re-initialize");
    let (first, again) = (inits[0].json(), inits[1].json());
    assert_eq!(first["id"], 0);
    assert_ne!(again["id"], first["id"], "replay uses a bridge-owned id");
    assert_eq!(again["params"], first["params"], "replays the host's params");
    assert_eq!(inits[1].header("mcp-session-id"), None);

    let initialized =
        fake.wait_hits(2, |h| h.rpc_method().as_deref() == Some("notifications/initialized")).await;
    assert_eq!(initialized[1].header("mcp-session-id"), Some("s2"));

    let tries = fake.wait_hits(2, |h| h.body == line).await;
    assert_eq!(tries.len(), 2, "retried exactly once");
    assert_eq!(tries[0].header("mcp-session-id"), Some("s1"));
    assert_eq!(tries[1].header("mcp-session-id"), Some("s2"));

    // the GET stream follows the new session
    let get = fake.wait_get(2).await;
    assert_eq!(get.header("mcp-session-id"), Some("s2"));
    fake.push_get(frame("9", r#"{"jsonrpc":"2.0","method":"partner.disconnected","params":{"seq":1}}"#));
    assert_eq!(
        bridge.recv_line().await,
        r#"{"jsonrpc":"2.0","method":"partner.disconnected","params":{"seq":1}}"#
    );
}

#[tokio::test]
async fn server_restart_seen_on_the_get_stream_renews_the_session() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;
    fake.wait_get(1).await;

    let left = r#"{"jsonrpc":"2.0","method":"partner.disconnected","params":{"seq":1}}"#;
    fake.push_get(frame("1", left));
    assert_eq!(bridge.recv_line().await, left);

    // restart: sessions forgotten and the stream connection dropped
    fake.expire_sessions();
    fake.drop_get();
    let warning = bridge.recv().await;
    assert_eq!(warning["method"], "notifications/message", "{warning}");
    assert_eq!(warning["params"]["level"], "warning");

    let gets = fake.wait_hits(3, |h| h.method == Method::GET).await;
    assert_eq!(gets[1].header("mcp-session-id"), Some("s1")); // got 404
    assert_eq!(gets[2].header("mcp-session-id"), Some("s2"));
    assert_eq!(gets[2].header("last-event-id"), None, "new session, new stream");
    // The new session numbers its notifications afresh: an identical
    // notification with seq 1 is new, not a duplicate.
    fake.push_get(frame("1", left));
    assert_eq!(bridge.recv_line().await, left);
    bridge.send(&request("5", "ping", "{}")).await;
    assert_eq!(bridge.recv_line().await, r#"{"jsonrpc":"2.0","id":5,"result":{}}"#);
}

#[tokio::test]
async fn concurrent_requests_are_not_serialized() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;

    bridge.send(&request(r#""slow""#, "test/slow", "{}")).await;
    fake.wait_hits(1, |h| h.rpc_method().as_deref() == Some("test/slow")).await;
    bridge.send(&request(r#""fast""#, "test/echo_json", "{}")).await;
    assert_eq!(
        bridge.recv_line().await,
        echo_result(r#""fast""#, "{}"),
        "the fast call must not wait for the slow one"
    );
    fake.0.slow_release.notify_one();
    assert_eq!(bridge.recv_line().await, echo_result(r#""slow""#, "{}"));
}

#[tokio::test]
async fn post_stream_cut_before_the_response_is_resumed_without_duplicates() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;

    bridge.send(&request("77", "test/cut", "{}")).await;
    assert_eq!(bridge.recv_line().await, progress(1));
    assert_eq!(bridge.recv_line().await, r#"{"jsonrpc":"2.0","id":77,"result":{"resumed":true}}"#);
    bridge.expect_silence(QUIET).await;
    let resumes = fake.wait_hits(1, |h| h.header("last-event-id") == Some("c-1")).await;
    assert_eq!(resumes[0].method, Method::GET);
}

#[tokio::test]
async fn get_405_means_no_stream_and_no_retries() {
    let (fake, url) = Fake::start().await;
    fake.0.get_not_allowed.store(true, Ordering::SeqCst);
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;
    fake.wait_get(1).await;
    bridge.send(&request("1", "ping", "{}")).await;
    assert_eq!(bridge.recv_line().await, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    // well past several retry intervals (the fake asks for 50 ms)
    tokio::time::sleep(Duration::from_millis(400)).await;
    let gets = fake.hits().into_iter().filter(|h| h.method == Method::GET).count();
    assert_eq!(gets, 1);
}

#[tokio::test]
async fn stdin_eof_deletes_the_session_and_exits_zero() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;
    fake.wait_get(1).await;

    let started = std::time::Instant::now();
    bridge.close_stdin();
    let status = bridge.wait_exit().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", bridge.stderr());
    assert!(started.elapsed() < Duration::from_secs(4), "idle bridge must exit promptly");
    let deletes = fake.wait_hits(1, |h| h.method == Method::DELETE).await;
    assert_eq!(deletes[0].header("mcp-session-id"), Some("s1"));
    assert_eq!(deletes[0].header("mcp-protocol-version"), Some(PROTOCOL));
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_also_deletes_the_session() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;
    fake.wait_get(1).await;
    let pid = bridge.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let status = bridge.wait_exit().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", bridge.stderr());
    fake.wait_hits(1, |h| h.method == Method::DELETE).await;
}

#[tokio::test]
async fn in_flight_request_finishes_after_stdin_eof() {
    let (fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;
    bridge.send(&request("3", "test/slow", "{}")).await;
    fake.wait_hits(1, |h| h.rpc_method().as_deref() == Some("test/slow")).await;
    bridge.close_stdin();
    fake.0.slow_release.notify_one();
    assert_eq!(bridge.recv_line().await, echo_result("3", "{}"));
    assert_eq!(bridge.wait_exit().await.code(), Some(0));
    fake.wait_hits(1, |h| h.method == Method::DELETE).await;
}

#[tokio::test]
async fn invalid_json_gets_a_parse_error_and_the_bridge_keeps_working() {
    let (_fake, url) = Fake::start().await;
    let mut bridge = spawn_bridge(&url);
    handshake(&mut bridge).await;

    bridge.send("{not json").await;
    let err = bridge.recv().await;
    assert_eq!(err["error"]["code"], -32700, "{err}");
    assert_eq!(err["id"], Value::Null);
    assert_eq!(err["jsonrpc"], "2.0");

    bridge.send("42").await;
    let err = bridge.recv().await;
    assert_eq!(err["error"]["code"], -32600, "{err}");

    bridge.send("").await; // blank lines are ignored
    bridge.send(&request("8", "ping", "{}")).await;
    assert_eq!(bridge.recv_line().await, r#"{"jsonrpc":"2.0","id":8,"result":{}}"#);
}

#[tokio::test]
async fn unreachable_server_gets_error_replies_not_a_hang() {
    // a port that was free a moment ago: connection refused
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut bridge = spawn_bridge(&url);

    bridge.send(INIT).await;
    let err = bridge.recv().await;
    assert_eq!(err["id"], 0);
    assert_eq!(err["error"]["code"], -32000);
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&url), "{message}");
    assert_eq!(err["error"]["data"]["url"], url);

    bridge.send(&request("12345678901234567890123", "tools/list", "{}")).await;
    let line = bridge.recv_line().await;
    assert!(line.contains(r#""id":12345678901234567890123,"#), "id echoed exactly: {line}");
    assert!(
        bridge.stderr().contains(&url) || {
            // stderr is read asynchronously; give it a moment
            tokio::time::sleep(Duration::from_millis(200)).await;
            bridge.stderr().contains(&url)
        }
    );
    bridge.close_stdin();
    assert_eq!(bridge.wait_exit().await.code(), Some(0));
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_timeout_not_a_hang() {
    let (fake, url) = Fake::start().await;
    let mut bridge = BridgeProc::spawn(&["--url", &url, "--timeout", "1"], &[]);
    handshake(&mut bridge).await;

    let started = std::time::Instant::now();
    bridge.send(&request(r#""h""#, "test/hang", "{}")).await;
    // other calls are unaffected meanwhile
    bridge.send(&request("2", "ping", "{}")).await;
    assert_eq!(bridge.recv_line().await, r#"{"jsonrpc":"2.0","id":2,"result":{}}"#);
    let err = bridge.recv().await;
    assert_eq!(err["id"], "h", "{err}");
    assert_eq!(err["error"]["code"], -32000);
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--timeout"), "{message}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "answered after {elapsed:?}"
    );
    fake.wait_hits(1, |h| h.rpc_method().as_deref() == Some("test/hang")).await;
}

#[tokio::test]
async fn https_upstream_with_a_private_ca() {
    let (fake, url, ca_pem) = Fake::start_tls().await;
    let ca_file = std::env::temp_dir().join(format!("bridge-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca_pem).expect("write the CA");
    let ca_arg = ca_file.to_str().expect("utf-8 path").to_owned();

    // Trusting the CA: the whole exchange works over TLS.
    let mut bridge = BridgeProc::spawn(&["--url", &url, "--ca-cert", &ca_arg], &[]);
    assert_eq!(handshake(&mut bridge).await, expected_init_response("0"));
    bridge.send(&request("7", "test/echo_json", r#"{"x":1}"#)).await;
    let echoed = bridge.recv().await;
    assert_eq!(echoed["id"], 7, "{echoed}");
    assert_eq!(echoed["result"]["echo"]["x"], 1, "{echoed}");
    assert!(fake.hits().iter().any(|h| h.method == Method::POST), "the fake saw the requests");
    bridge.close_stdin();
    assert_eq!(bridge.wait_exit().await.code(), Some(0));

    // Without it the certificate is refused, and the host gets an error, not a hang.
    let mut untrusting = spawn_bridge(&url);
    untrusting.send(INIT).await;
    let refused = untrusting.recv().await;
    assert_eq!(refused["id"], 0);
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    untrusting.close_stdin();
    assert_eq!(untrusting.wait_exit().await.code(), Some(0));
    let _ = std::fs::remove_file(&ca_file);
}
