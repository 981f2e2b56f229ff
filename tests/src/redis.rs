//! A real `redis-server` for a test: on a free loopback port, in a temporary directory,
//! with append-only persistence (`appendfsync always`), stopped when dropped.
//!
//! `redis-server` comes from Debian's packages: `bash scripts/setup.sh` installs it, and
//! so does the first test that needs it when it is missing (`scripts/redis.sh install`),
//! so `cargo test --workspace` works on a fresh machine. A test never skips because
//! Redis is missing: it fails, saying what to install.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::{STEP, within, workspace_root};

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `redis://127.0.0.1:port`.
    pub url: String,
}

/// `redis-server`, installed first if it is missing.
fn binary() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let find = || {
                std::env::var_os("PATH")
                    .into_iter()
                    .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                    .map(|dir| dir.join("redis-server"))
                    .find(|candidate| candidate.is_file())
            };
            if let Some(found) = find() {
                return found;
            }
            let status = std::process::Command::new("bash")
                .arg(workspace_root().join("scripts/redis.sh"))
                .arg("install")
                .status()
                .expect("run scripts/redis.sh");
            assert!(
                status.success(),
                "installing redis-server failed ({status}); run `bash scripts/setup.sh`"
            );
            find().expect("redis-server on PATH after scripts/redis.sh install")
        })
        .clone()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl RedisServer {
    /// A fresh redis-server.
    pub async fn start() -> RedisServer {
        let dir = tempfile::Builder::new().prefix("mcp-chat-redis-").tempdir().expect("temp dir");
        let port = free_port();
        let mut server = RedisServer { child: None, dir, port, url: format!("redis://127.0.0.1:{port}") };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let binary = tokio::task::spawn_blocking(binary).await.expect("find redis-server");
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        within(STEP, "redis-server answers PING", async {
            loop {
                if self.ping().await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
        .await;
    }

    async fn ping(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
    }

    /// Kills it (SIGKILL: what is acknowledged is on disk in the append-only file).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = within(STEP, "redis-server dies", child.wait()).await;
        }
    }

    /// Starts it again on the same port and directory (it reloads its append-only file).
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }
}
