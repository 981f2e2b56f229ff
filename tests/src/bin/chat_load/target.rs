//! The process under load: the real server (spawned or already running) or the floor
//! relay (this binary's hidden `floor-server` command, in its own process so it gets
//! its own runtime and its memory and CPU can be read like the server's).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::{Error, Result};

/// Which implementation a run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// chat-mcp-http.
    Server,
    /// The bare axum relay.
    Floor,
}

impl Kind {
    /// Column label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Floor => "floor",
        }
    }
}

/// A target to send load to.
pub struct Target {
    /// Its MCP endpoint.
    pub url: String,
    /// Its process id, when known (for /proc readings).
    pub pid: Option<u32>,
    child: Option<Child>,
}

/// Flags that keep the server's protective limits out of the measurement: no message rate
/// limit, room for every session and queued participant, mailboxes that never fill within
/// a run, and quiet logs. `--server-arg` flags come after these and win.
const GENEROUS_SERVER_FLAGS: &[&str] = &[
    "--log-level",
    "warn",
    "--rate-messages",
    "1000000",
    "--rate-window",
    "1s",
    "--max-sessions",
    "100000",
    "--max-sessions-per-address",
    "0",
    "--max-connections",
    "100000",
    "--queue-capacity",
    "100000",
    "--mailbox-capacity",
    "100000",
];

/// How long a spawned process may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(30);

impl Target {
    /// A server that is already running.
    pub fn external(url: &str, pid: Option<u32>) -> Target {
        Target { url: url.to_owned(), pid, child: None }
    }

    /// Starts `path` on a free loopback port with generous limits.
    pub async fn spawn_server(path: &Path, extra: &[String]) -> Result<Target> {
        let mut command = Command::new(path);
        command.args(["--host", "127.0.0.1", "--port", "0"]).args(GENEROUS_SERVER_FLAGS).args(extra);
        let (child, url) = start(command, "mcp-chat listening on ")
            .await
            .map_err(|e| e.context(&format!("starting {}", path.display())))?;
        Ok(Target { url, pid: child.id(), child: Some(child) })
    }

    /// Starts the floor relay (this executable, `floor-server`).
    pub async fn spawn_floor() -> Result<Target> {
        let exe = std::env::current_exe()
            .map_err(|e| Error::new(format!("cannot find the chat-load executable: {e}")))?;
        let mut command = Command::new(exe);
        command.args(["floor-server", "--host", "127.0.0.1", "--port", "0"]);
        let (child, url) = start(command, crate::floor::LISTENING)
            .await
            .map_err(|e| e.context("starting the floor relay"))?;
        Ok(Target { url, pid: child.id(), child: Some(child) })
    }

    /// Stops a process this generator started (a no-op for external servers).
    pub async fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
    }
}

/// Spawns `command` and waits for the stdout line `prefix<url>`.
async fn start(mut command: Command, prefix: &str) -> Result<(Child, String)> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| Error::new("no stdout pipe"))?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(START_LIMIT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix(prefix) {
                return Ok(url.trim().to_owned());
            }
        }
        Err(Error::new("it exited before printing its address"))
    })
    .await
    .map_err(|_| Error::new(format!("it did not print its address within {START_LIMIT:?}")))??;
    // Keep reading stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}
