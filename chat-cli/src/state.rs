//! The identities this client owns, kept between runs.
//!
//! The server gives an identity (a dm client id, a roulette user id) to whoever holds
//! its resume token, online or offline, so a client that forgets the token loses the id
//! for good. The tokens live in one private file, `identities.json` in the state
//! directory (`$XDG_STATE_HOME/mcp-chat`, by default `~/.local/state/mcp-chat`, or
//! `--state-dir` / `MCP_CHAT_STATE_DIR`): the directory is created with mode 0700, the
//! file is written with mode 0600, always whole (a temporary file renamed over the old
//! one), so a crash mid-write leaves the previous version.
//!
//! A damaged or unreadable file never stops the client: it is treated as empty, with a
//! warning, and a damaged one is kept aside as `identities.json.corrupt` before a new
//! file replaces it. Tokens never appear in `Debug` output or messages.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chat_core::Time;
use serde::{Deserialize, Serialize};

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "identities.json";
/// Where a damaged file is kept before it is replaced.
const CORRUPT_SUFFIX: &str = ".corrupt";
/// The format written.
const VERSION: u32 = 1;
/// Roulette identities remembered per server (one per client that may still be running
/// or may have crashed); the oldest are dropped first.
const MAX_ROULETTE: usize = 8;

/// A resume token: compared and stored, never shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    /// The token itself, for the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The format version.
    #[serde(default = "current_version")]
    pub version: u32,
    /// Per server, keyed by its MCP endpoint URL (see [`server_key`]).
    #[serde(default)]
    pub servers: BTreeMap<String, ServerState>,
}

fn current_version() -> u32 {
    VERSION
}

impl Default for State {
    fn default() -> Self {
        State { version: VERSION, servers: BTreeMap::new() }
    }
}

/// What we own on one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerState {
    /// Direct-message client ids (`dm --as ID`) and their tokens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clients: BTreeMap<String, ClientEntry>,
    /// Roulette identities of clients that are running or stopped without quitting,
    /// oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roulette: Vec<RouletteEntry>,
}

/// A dm client id's token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEntry {
    /// The resume token.
    pub resume_token: Token,
    /// When it was saved (for people reading the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<Time>,
}

/// A roulette identity the server generated for us.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouletteEntry {
    /// The generated user id.
    pub user_id: String,
    /// The resume token.
    pub resume_token: Token,
    /// The process that holds it: while that process runs, nobody else resumes it.
    pub pid: u32,
    /// When it was saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<Time>,
}

/// The key for a server: its URL without surrounding space or trailing slashes.
pub fn server_key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

impl State {
    fn server(&self, url: &str) -> Option<&ServerState> {
        self.servers.get(&server_key(url))
    }

    fn server_mut(&mut self, url: &str) -> &mut ServerState {
        self.servers.entry(server_key(url)).or_default()
    }

    fn prune(&mut self, url: &str) {
        let key = server_key(url);
        if self.servers.get(&key).is_some_and(|s| s.clients.is_empty() && s.roulette.is_empty()) {
            self.servers.remove(&key);
        }
    }

    /// The token saved for dm client `client_id` on `url`.
    pub fn client_token(&self, url: &str, client_id: &str) -> Option<&Token> {
        self.server(url)?.clients.get(client_id).map(|c| &c.resume_token)
    }

    /// Saves (or replaces) the token of dm client `client_id` on `url`.
    pub fn set_client_token(&mut self, url: &str, client_id: &str, token: Token, now: Option<Time>) {
        let entry = ClientEntry { resume_token: token, saved_at: now };
        self.server_mut(url).clients.insert(client_id.to_owned(), entry);
    }

    /// Forgets dm client `client_id` on `url`; `true` if it was there.
    pub fn forget_client(&mut self, url: &str, client_id: &str) -> bool {
        let removed =
            self.servers.get_mut(&server_key(url)).is_some_and(|s| s.clients.remove(client_id).is_some());
        self.prune(url);
        removed
    }

    /// The newest roulette identity on `url` that no running process holds (`running`
    /// says whether a pid is alive), if any.
    pub fn roulette_to_resume(&self, url: &str, running: impl Fn(u32) -> bool) -> Option<&RouletteEntry> {
        self.server(url)?.roulette.iter().rev().find(|r| !running(r.pid))
    }

    /// Saves roulette identity `user_id` as held by process `pid`, replacing any entry
    /// for the same id and dropping the oldest beyond the limit.
    pub fn set_roulette(&mut self, url: &str, user_id: &str, token: Token, pid: u32, now: Option<Time>) {
        let list = &mut self.server_mut(url).roulette;
        list.retain(|r| r.user_id != user_id);
        list.push(RouletteEntry { user_id: user_id.to_owned(), resume_token: token, pid, saved_at: now });
        let excess = list.len().saturating_sub(MAX_ROULETTE);
        list.drain(..excess);
    }

    /// Forgets roulette identity `user_id` on `url`; `true` if it was there.
    pub fn forget_roulette(&mut self, url: &str, user_id: &str) -> bool {
        let removed = self.servers.get_mut(&server_key(url)).is_some_and(|s| {
            let before = s.roulette.len();
            s.roulette.retain(|r| r.user_id != user_id);
            s.roulette.len() != before
        });
        self.prune(url);
        removed
    }

    /// Forgets every roulette identity on `url`; how many there were.
    pub fn forget_all_roulette(&mut self, url: &str) -> usize {
        let removed = self.servers.get_mut(&server_key(url)).map(|s| std::mem::take(&mut s.roulette).len());
        self.prune(url);
        removed.unwrap_or(0)
    }
}

/// What [`Store::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The content (empty when there is no file or it could not be used).
    pub state: State,
    /// Why the file could not be used, for the user.
    pub warning: Option<String>,
}

/// The state file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
}

/// What the state directory defaults to: `$XDG_STATE_HOME/mcp-chat` when that is an
/// absolute path, else `$HOME/.local/state/mcp-chat`.
pub fn default_dir(xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let absolute = |v: Option<&str>| v.filter(|v| Path::new(v).is_absolute()).map(PathBuf::from);
    if let Some(base) = absolute(xdg_state_home) {
        return Some(base.join("mcp-chat"));
    }
    absolute(home).map(|home| home.join(".local").join("state").join("mcp-chat"))
}

impl Store {
    /// The store in `dir` (created when first written).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Store {
        let dir = dir.into();
        let path = dir.join(FILE_NAME);
        Store { dir, path }
    }

    /// The store in `dir` if given, else in the default directory from the environment.
    pub fn locate(dir: Option<&Path>) -> Result<Store, String> {
        if let Some(dir) = dir {
            return Ok(Store::in_dir(dir));
        }
        let var = |name| std::env::var(name).ok();
        default_dir(var("XDG_STATE_HOME").as_deref(), var("HOME").as_deref())
            .map(Store::in_dir)
            .ok_or_else(|| "no state directory: HOME is not set; pass --state-dir".to_owned())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file. A missing file is an empty state; a damaged or unreadable one is
    /// an empty state with a warning.
    pub fn load(&self) -> Loaded {
        match self.read() {
            Ok(state) => Loaded { state, warning: None },
            Err(Problem::Unreadable(e)) => Loaded {
                state: State::default(),
                warning: Some(format!(
                    "cannot read the state file {} ({e}); identities saved by earlier runs are not used",
                    self.path.display()
                )),
            },
            Err(Problem::Damaged(e)) => Loaded {
                state: State::default(),
                warning: Some(format!(
                    "the state file {} is damaged ({e}); ignoring it, so identities saved by earlier runs \
                     cannot be resumed (it is kept as {}{CORRUPT_SUFFIX} when a new one is written)",
                    self.path.display(),
                    FILE_NAME
                )),
            },
        }
    }

    /// Reads the current file, applies `change` and writes the result atomically. A
    /// damaged file is moved aside first; an unreadable one is left alone (`Err`).
    pub fn update(&self, change: impl FnOnce(&mut State)) -> Result<(), String> {
        let where_ = || self.path.display().to_string();
        let mut state = match self.read() {
            Ok(state) => state,
            Err(Problem::Damaged(_)) => {
                let aside = self.dir.join(format!("{FILE_NAME}{CORRUPT_SUFFIX}"));
                std::fs::rename(&self.path, &aside)
                    .map_err(|e| format!("cannot move the damaged {} aside: {e}", where_()))?;
                State::default()
            }
            Err(Problem::Unreadable(e)) => return Err(format!("cannot read {}: {e}", where_())),
        };
        change(&mut state);
        let mut text = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
        text.push('\n');
        self.create_dir().map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        write_atomically(&self.path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", where_()))
    }

    fn read(&self) -> Result<State, Problem> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Problem::Damaged(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Problem::Unreadable(e.to_string())),
        }
    }

    /// Creates the directory (and its parents), private to the user.
    fn create_dir(&self) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir)
    }
}

/// Why the file could not be used.
enum Problem {
    /// Reading failed (permissions, a directory in its place, ...).
    Unreadable(String),
    /// Not the JSON this module writes.
    Damaged(String),
}

/// Writes `bytes` to `path` all or nothing: into a new private file next to it, flushed
/// to disk, then renamed over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(FILE_NAME);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        // A leftover temporary file from a crashed run may have other permissions.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // Make the rename itself durable; not every platform can open a directory.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Whether process `pid` is running (on this machine). Unknown counts as running, so
/// an identity is never taken from a client that may still use it.
pub fn process_running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process
        // exists and may be signalled.
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:8123/mcp";

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temporary directory")
    }

    #[test]
    fn a_missing_file_is_an_empty_state_without_warning() {
        let dir = dir();
        let loaded = Store::in_dir(dir.path().join("nested")).load();
        assert_eq!(loaded.state, State::default());
        assert_eq!(loaded.warning, None);
    }

    #[test]
    fn tokens_round_trip_through_the_file() {
        let dir = dir();
        let store = Store::in_dir(dir.path().join("mcp-chat"));
        let at = Some(Time::from_millis(1_700_000_000_000));
        store
            .update(|s| {
                s.set_client_token(URL, "alice", Token::new("rt_a"), at);
                s.set_client_token("http://other/mcp", "alice", Token::new("rt_other"), None);
                s.set_roulette(URL, "u_1", Token::new("rt_u1"), 41, at);
            })
            .expect("saved");
        let loaded = Store::in_dir(dir.path().join("mcp-chat")).load();
        assert_eq!(loaded.warning, None);
        let state = loaded.state;
        assert_eq!(state.client_token(URL, "alice"), Some(&Token::new("rt_a")));
        assert_eq!(state.client_token(&format!("{URL}/"), "alice"), Some(&Token::new("rt_a")), "same server");
        assert_eq!(state.client_token("http://other/mcp", "alice"), Some(&Token::new("rt_other")));
        assert_eq!(state.client_token(URL, "bob"), None);
        let roulette = state.roulette_to_resume(URL, |_| false).expect("roulette entry");
        assert_eq!((roulette.user_id.as_str(), roulette.pid), ("u_1", 41));
        assert_eq!(roulette.resume_token, Token::new("rt_u1"));

        // A second update keeps what it does not touch.
        store.update(|s| assert!(s.forget_client(URL, "alice"))).expect("saved");
        let state = store.load().state;
        assert_eq!(state.client_token(URL, "alice"), None);
        assert_eq!(state.client_token("http://other/mcp", "alice"), Some(&Token::new("rt_other")));
        assert!(state.roulette_to_resume(URL, |_| false).is_some());
    }

    #[test]
    fn the_file_is_readable_json_keyed_by_server_and_id() {
        let dir = dir();
        let store = Store::in_dir(dir.path());
        store.update(|s| s.set_client_token(URL, "alice", Token::new("rt_a"), None)).expect("saved");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.path()).expect("read")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"version": 1, "servers": {URL: {"clients": {"alice": {"resume_token": "rt_a"}}}}})
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_to_the_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir();
        let state_dir = dir.path().join("state").join("mcp-chat");
        let store = Store::in_dir(&state_dir);
        store.update(|s| s.set_client_token(URL, "alice", Token::new("rt_a"), None)).expect("saved");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(&state_dir), 0o700);

        // A file someone made readable to others is private again after the next write.
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        store.update(|s| s.set_client_token(URL, "bob", Token::new("rt_b"), None)).expect("saved");
        assert_eq!(mode(store.path()), 0o600);
    }

    #[test]
    fn a_damaged_file_warns_is_treated_as_empty_and_is_kept_aside() {
        let dir = dir();
        let store = Store::in_dir(dir.path());
        std::fs::write(store.path(), b"{\"servers\": {\"x\": [rt_secret").expect("write");
        let loaded = store.load();
        assert_eq!(loaded.state, State::default());
        let warning = loaded.warning.expect("a warning");
        assert!(warning.contains("damaged") && warning.contains(FILE_NAME), "{warning}");
        assert!(!warning.contains("rt_secret"), "never shows the file's content: {warning}");

        store.update(|s| s.set_client_token(URL, "alice", Token::new("rt_a"), None)).expect("saved");
        assert_eq!(store.load().state.client_token(URL, "alice"), Some(&Token::new("rt_a")));
        let aside = std::fs::read(dir.path().join("identities.json.corrupt")).expect("kept aside");
        assert_eq!(aside, b"{\"servers\": {\"x\": [rt_secret");
    }

    #[test]
    fn a_file_of_another_shape_is_damaged_too() {
        let dir = dir();
        let store = Store::in_dir(dir.path());
        std::fs::write(store.path(), b"[1, 2, 3]").expect("write");
        assert!(store.load().warning.is_some());
        std::fs::write(store.path(), b"{}").expect("write");
        let loaded = store.load();
        assert_eq!((loaded.state, loaded.warning), (State::default(), None), "missing fields default");
    }

    #[test]
    fn an_unreadable_file_warns_and_is_not_overwritten() {
        let dir = dir();
        let store = Store::in_dir(dir.path());
        // A directory where the file should be cannot be read on any platform.
        std::fs::create_dir(store.path()).expect("mkdir");
        let loaded = store.load();
        assert_eq!(loaded.state, State::default());
        assert!(loaded.warning.is_some_and(|w| w.contains("cannot read")));
        assert!(store.update(|s| s.set_client_token(URL, "a", Token::new("rt"), None)).is_err());
        assert!(store.path().is_dir(), "left alone");
    }

    #[test]
    fn writes_replace_the_file_whole_and_leave_no_temporary_files() {
        let dir = dir();
        let store = Store::in_dir(dir.path());
        store.update(|s| s.set_client_token(URL, "alice", Token::new("rt_a"), None)).expect("saved");
        // A stale temporary file from a crashed writer does not get in the way.
        let stale = dir.path().join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        std::fs::write(&stale, b"half a fi").expect("write");
        store.update(|s| s.set_client_token(URL, "bob", Token::new("rt_b"), None)).expect("saved");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        let state = store.load().state;
        assert!(state.client_token(URL, "alice").is_some() && state.client_token(URL, "bob").is_some());
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = dir();
        let store = Store::in_dir(dir.path());
        store.update(|s| s.set_client_token(URL, "alice", Token::new("rt_a"), None)).expect("saved");
        let before = std::fs::read(store.path()).expect("read");
        // Something in the way of the temporary file: the write fails before the rename.
        let temp = dir.path().join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        std::fs::create_dir_all(temp.join("in-the-way")).expect("mkdir");
        let result = store.update(|s| s.set_client_token(URL, "bob", Token::new("rt_b"), None));
        assert!(result.is_err_and(|e| e.contains("cannot write")));
        assert_eq!(std::fs::read(store.path()).expect("read"), before, "the old file is intact");
        std::fs::remove_dir_all(&temp).expect("clean up");
        store.update(|s| s.set_client_token(URL, "bob", Token::new("rt_b"), None)).expect("saved");
        assert!(store.load().state.client_token(URL, "bob").is_some());
    }

    #[test]
    fn roulette_identities_of_running_clients_are_not_resumed() {
        let mut state = State::default();
        state.set_roulette(URL, "u_old", Token::new("rt_old"), 10, None);
        state.set_roulette(URL, "u_new", Token::new("rt_new"), 20, None);
        fn pick(state: &State, running: &[u32]) -> Option<String> {
            state.roulette_to_resume(URL, |pid| running.contains(&pid)).map(|r| r.user_id.clone())
        }
        assert_eq!(pick(&state, &[]).as_deref(), Some("u_new"), "the newest first");
        assert_eq!(pick(&state, &[20]).as_deref(), Some("u_old"), "not one a running client holds");
        assert_eq!(pick(&state, &[10, 20]), None);
        assert!(state.forget_roulette(URL, "u_new"));
        assert!(!state.forget_roulette(URL, "u_new"));
        assert_eq!(pick(&state, &[]).as_deref(), Some("u_old"));
        for n in 0..20 {
            state.set_roulette(URL, &format!("u_{n}"), Token::new("rt"), n, None);
        }
        let list = &state.servers[URL].roulette;
        assert_eq!(list.len(), MAX_ROULETTE);
        assert_eq!(list.last().map(|r| r.user_id.as_str()), Some("u_19"));
        assert_eq!(state.forget_all_roulette(URL), MAX_ROULETTE);
        assert!(state.servers.is_empty(), "an empty server entry is dropped");
    }

    #[test]
    fn this_process_counts_as_running_and_a_finished_one_does_not() {
        assert!(process_running(std::process::id()));
        #[cfg(unix)]
        {
            let mut child = std::process::Command::new("true").spawn().expect("spawn true");
            let pid = child.id();
            child.wait().expect("wait");
            assert!(!process_running(pid));
        }
    }

    #[test]
    fn the_default_directory_follows_xdg() {
        assert_eq!(default_dir(Some("/x/state"), Some("/home/a")), Some(PathBuf::from("/x/state/mcp-chat")));
        assert_eq!(
            default_dir(Some("relative"), Some("/home/a")),
            Some(PathBuf::from("/home/a/.local/state/mcp-chat")),
            "a relative XDG_STATE_HOME is ignored, as the spec says"
        );
        assert_eq!(default_dir(None, Some("")), None);
        assert_eq!(default_dir(None, None), None);
    }

    #[test]
    fn tokens_do_not_show_in_debug_output() {
        let mut state = State::default();
        state.set_client_token(URL, "alice", Token::new("rt_0123456789abcdef"), None);
        state.set_roulette(URL, "u_1", Token::new("rt_fedcba9876543210"), 1, None);
        let debug = format!("{state:?}");
        assert!(!debug.contains("rt_0123") && !debug.contains("rt_fedc"), "{debug}");
    }
}
