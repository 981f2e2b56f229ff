//! The command line.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::{Mode, Settings};
use crate::net::{Identify, NetConfig};

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
}
