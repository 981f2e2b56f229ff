//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::{Mode, Settings};
use crate::net::{Identify, NetConfig};
use crate::state::Store;

/// Chat from the terminal through an mcp-chat server: meet strangers (roulette) or
/// message named agents and colleagues (dm).
///
/// A full-screen interface when the output is a terminal; otherwise (or with --plain)
/// one line in per message and one line out per event, for scripts. Type /help inside.
#[derive(Debug, Parser)]
#[command(name = "chat-cli", version, about, long_about)]
pub struct Cli {
    /// The server's MCP endpoint.
    #[arg(long, env = "MCP_CHAT_URL", default_value = "http://127.0.0.1:8123/mcp", global = true)]
    pub server: String,

    /// Your name as others see it (default: "Anonymous" in roulette, your client id in dm).
    #[arg(long, global = true)]
    pub name: Option<String>,

    /// Topics you would like to talk about, comma-separated (roulette prefers partners
    /// who share one).
    #[arg(long, value_delimiter = ',', global = true)]
    pub interests: Vec<String>,

    /// Bearer token, if the server requires one.
    #[arg(long, env = "MCP_CHAT_AUTH_TOKEN", hide_env_values = true, global = true)]
    pub auth_token: Option<String>,

    /// Plain line mode: one line in per message, one line out per event (automatic when
    /// stdout is not a terminal). Lines starting with / are commands; end of input quits.
    #[arg(long, global = true)]
    pub plain: bool,

    /// In plain mode, print each event as a JSON object on its own line (implies --plain).
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for the server when connecting.
    #[arg(long, default_value_t = 10, value_name = "SECS", global = true)]
    pub connect_timeout: u64,

    /// Where to keep the resume tokens of your identities, so a restart (even after a
    /// crash) is still you (default: $XDG_STATE_HOME/mcp-chat, else
    /// ~/.local/state/mcp-chat).
    #[arg(long, env = "MCP_CHAT_STATE_DIR", value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// Delete the saved resume token of this identity (dm --as ID; in roulette, every
    /// roulette identity saved for this server) and exit. The server still knows a dm id:
    /// without its token nobody can check in as it until the server forgets it (after a
    /// day offline, by default).
    #[arg(long, global = true)]
    pub forget: bool,

    /// In the full-screen interface: when a message arrives while the terminal window is
    /// not focused, ring the bell and put the number of unseen messages in the window
    /// title (needs a terminal that reports focus; off by default).
    #[arg(long, global = true)]
    pub notify: bool,

    /// What to do (default: roulette).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The two ways to chat.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Chat roulette: get paired with a random stranger; /next for someone new.
    Roulette,
    /// Direct messages between named clients (agents, colleagues): who is online,
    /// send to someone, read your inbox.
    Dm {
        /// Your client id: others message you by it.
        #[arg(long = "as", value_name = "CLIENT_ID")]
        client_id: String,
        /// Start out writing to this client.
        #[arg(long, value_name = "CLIENT_ID")]
        to: Option<String>,
    },
}

impl Cli {
    /// Whether to use plain line mode.
    pub fn wants_plain(&self, stdout_is_terminal: bool) -> bool {
        self.plain || self.json || !stdout_is_terminal
    }

    /// The state file, from `--state-dir` / `MCP_CHAT_STATE_DIR` or the default place.
    pub fn store(&self) -> Result<Store, String> {
        Store::locate(self.state_dir.as_deref().filter(|d| !d.as_os_str().is_empty()))
    }

    /// `--forget`: deletes the saved token(s) and says what happened.
    pub fn forget_saved(&self) -> Result<String, String> {
        let store = self.store()?;
        let (url, file) = (&self.server, store.path().display());
        let loaded = store.load();
        if let Some(warning) = loaded.warning {
            return Err(warning);
        }
        match &self.command {
            Some(Command::Dm { client_id, .. }) => {
                if loaded.state.client_token(url, client_id).is_none() {
                    return Ok(format!("no resume token for '{client_id}' on {url} is saved in {file}"));
                }
                store.update(|s| {
                    s.forget_client(url, client_id);
                })?;
                Ok(format!("deleted the resume token for '{client_id}' on {url} from {file}"))
            }
            None | Some(Command::Roulette) => {
                if loaded.state.roulette_to_resume(url, |_| false).is_none() {
                    return Ok(format!("no roulette identity for {url} is saved in {file}"));
                }
                let mut removed = 0;
                store.update(|s| removed = s.forget_all_roulette(url))?;
                let what = if removed == 1 { "identity" } else { "identities" };
                Ok(format!("deleted {removed} saved roulette {what} for {url} from {file}"))
            }
        }
    }

    /// The app's settings and the network task's configuration.
    pub fn configure(&self, offset_secs: i32) -> (Settings, NetConfig, Option<String>) {
        let name = self.name.clone().filter(|n| !n.trim().is_empty());
        let (mode, identify, to) = match &self.command {
            None | Some(Command::Roulette) => {
                let interests: Vec<String> =
                    self.interests.iter().map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).collect();
                (Mode::Roulette, Identify::Roulette { name, interests }, None)
            }
            Some(Command::Dm { client_id, to }) => (
                Mode::Dm { client_id: client_id.clone() },
                Identify::Dm { client_id: client_id.clone(), name },
                to.clone(),
            ),
        };
        let settings = Settings { mode, server: self.server.clone(), offset_secs };
        let net = NetConfig {
            url: self.server.clone(),
            auth_token: self.auth_token.clone().filter(|t| !t.is_empty()),
            identify,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            call_timeout: Duration::from_secs(20),
            poll_wait_secs: 25,
            state: self.store(),
        };
        (settings, net, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_roulette_on_the_local_server() {
        let cli = Cli::try_parse_from(["chat-cli"]).expect("parses");
        let (settings, net, to) = cli.configure(0);
        assert_eq!(settings.mode, Mode::Roulette);
        assert_eq!(net.url, "http://127.0.0.1:8123/mcp");
        assert_eq!(net.identify, Identify::Roulette { name: None, interests: vec![] });
        assert_eq!(to, None);
        assert!(cli.wants_plain(false));
        assert!(!cli.wants_plain(true));
    }

    #[test]
    fn roulette_flags_and_dm_subcommand() {
        let cli = Cli::try_parse_from(["chat-cli", "--name", "Ann", "--interests", "rust, music,", "--json"])
            .expect("parses");
        let (_, net, _) = cli.configure(0);
        assert_eq!(
            net.identify,
            Identify::Roulette { name: Some("Ann".into()), interests: vec!["rust".into(), "music".into()] }
        );
        assert!(cli.wants_plain(true));
        let cli = Cli::try_parse_from([
            "chat-cli",
            "dm",
            "--as",
            "alice",
            "--to",
            "bob",
            "--server",
            "http://h/mcp",
        ])
        .expect("parses");
        let (settings, net, to) = cli.configure(0);
        assert_eq!(settings.mode, Mode::Dm { client_id: "alice".into() });
        assert_eq!(net.url, "http://h/mcp");
        assert_eq!(to.as_deref(), Some("bob"));
        assert!(Cli::try_parse_from(["chat-cli", "dm"]).is_err(), "--as is required");
    }

    #[test]
    fn the_state_directory_can_be_chosen() {
        let cli = Cli::try_parse_from(["chat-cli", "dm", "--as", "a", "--state-dir", "/tmp/somewhere"])
            .expect("parses");
        let (_, net, _) = cli.configure(0);
        let store = net.state.expect("a store");
        assert_eq!(store.path(), std::path::Path::new("/tmp/somewhere/identities.json"));
        assert!(!cli.forget);
        let cli = Cli::try_parse_from(["chat-cli", "--forget", "dm", "--as", "a"]).expect("parses");
        assert!(cli.forget);
    }

    #[test]
    fn forget_deletes_the_saved_token_of_one_identity() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::in_dir(dir.path());
        let url = "http://127.0.0.1:8123/mcp";
        store
            .update(|s| {
                s.set_client_token(url, "alice", crate::state::Token::new("rt_a"), None);
                s.set_client_token(url, "bob", crate::state::Token::new("rt_b"), None);
            })
            .expect("saved");
        let state_dir = dir.path().to_str().expect("utf-8 path");
        let forget = |who: &str| {
            Cli::try_parse_from(["chat-cli", "--state-dir", state_dir, "--forget", "dm", "--as", who])
                .expect("parses")
                .forget_saved()
                .expect("forgets")
        };
        assert!(forget("alice").starts_with("deleted the resume token for 'alice'"));
        assert!(forget("alice").starts_with("no resume token for 'alice'"));
        let state = store.load().state;
        assert_eq!(state.client_token(url, "alice"), None);
        assert!(state.client_token(url, "bob").is_some(), "the others stay");
    }
}
