//! Helpers for tests that drive the real `chat-mcp-stdio-bridge` binary as a
//! child process, the way a desktop MCP host does.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Bound on every single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// Path of the bridge binary, next to this test executable
/// (`target/<profile>/deps/<test>` -> `target/<profile>/chat-mcp-stdio-bridge`).
///
/// `cargo test --workspace` builds it (the bridge package has an integration
/// test), but `cargo test -p tests` does not, so if the binary is missing or
/// older than the bridge's sources it is (re)built once per test process
/// with `cargo build -p chat-mcp-stdio-bridge`. `CHAT_MCP_BRIDGE_BIN`
/// overrides the path (e.g. for a prebuilt binary).
pub fn bridge_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("CHAT_MCP_BRIDGE_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test executable lives in target/<profile>/deps");
        let bin = profile_dir.join(format!("chat-mcp-stdio-bridge{}", std::env::consts::EXE_SUFFIX));
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../chat-mcp-stdio-bridge");
        let stale = match std::fs::metadata(&bin).and_then(|m| m.modified()) {
            Ok(built) => newest_mtime(&crate_dir).is_some_and(|src| src > built),
            Err(_) => true,
        };
        if stale {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(cargo);
            cmd.args(["build", "-p", "chat-mcp-stdio-bridge"]).current_dir(&crate_dir);
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "cargo build -p chat-mcp-stdio-bridge failed");
        }
        assert!(bin.exists(), "bridge binary not found at {}", bin.display());
        bin
    })
    .clone()
}

/// Newest modification time of `Cargo.toml` and `src/**` under `dir`.
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    fn walk(path: &Path, newest: &mut Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    walk(&entry.path(), newest);
                }
            }
        } else if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(Some(modified));
        }
    }
    let mut newest = None;
    walk(&dir.join("Cargo.toml"), &mut newest);
    walk(&dir.join("src"), &mut newest);
    newest
}

/// A running bridge process with line-oriented access to its stdio.
pub struct BridgeProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl BridgeProc {
    /// Spawns the bridge with `args` and extra environment variables. The
    /// bridge's own MCP_CHAT_* variables are cleared first so the test does
    /// not depend on the caller's environment.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bridge_bin());
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        for var in [
            "MCP_CHAT_URL",
            "MCP_CHAT_AUTH_TOKEN",
            "MCP_CHAT_HEADERS",
            "MCP_CHAT_TIMEOUT",
            "MCP_CHAT_LOG_LEVEL",
        ] {
            cmd.env_remove(var);
        }
        if !args.contains(&"--log-level") {
            cmd.env("MCP_CHAT_LOG_LEVEL", "debug");
        }
        cmd.envs(envs.iter().copied());
        let mut child = cmd.spawn().expect("spawn chat-mcp-stdio-bridge");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        BridgeProc { child, stdin, stdout, stderr }
    }

    /// Everything the bridge logged so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Writes one line (a newline is appended) to the bridge's stdin.
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(line.as_bytes()).await.expect("write stdin");
        stdin.write_all(b"\n").await.expect("write stdin");
        stdin.flush().await.expect("flush stdin");
    }

    /// Next stdout line, exactly as written; panics after [`WAIT`].
    pub async fn recv_line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("bridge closed stdout; stderr:\n{}", self.stderr()),
            Ok(Err(e)) => panic!("reading bridge stdout: {e}"),
            Err(_) => panic!("no stdout line within {WAIT:?}; stderr:\n{}", self.stderr()),
        }
    }

    /// Next stdout line parsed as JSON (and checked to be a JSON object).
    pub async fn recv(&mut self) -> Value {
        let line = self.recv_line().await;
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert!(value.is_object(), "stdout line is not a JSON object: {line}");
        value
    }

    /// Asserts that nothing is written to stdout for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(line) = tokio::time::timeout(quiet, self.stdout.next_line()).await {
            panic!("expected no output, got {line:?}; stderr:\n{}", self.stderr());
        }
    }

    /// Closes stdin, as a host does when it shuts a server down.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.expect("wait for bridge"),
            Err(_) => panic!("bridge did not exit within {WAIT:?}; stderr:\n{}", self.stderr()),
        }
    }

    /// Process id (to send signals).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }
}
