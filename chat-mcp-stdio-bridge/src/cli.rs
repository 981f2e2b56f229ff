//! Command line and environment configuration.
//!
//! Every flag is also readable from an environment variable because desktop
//! hosts (Claude Desktop, Cursor, VS Code) make it easy to set `env` entries
//! in their JSON config but awkward to quote arguments; a secret kept in an
//! environment variable also stays out of `ps` output.

use std::time::Duration;

use clap::Parser;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::headers::{self, HeaderError};

/// Default endpoint of the mcp-chat server (`chat-mcp-http`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8123/mcp";

/// Raw command line, as clap parses it.
#[derive(Debug, Parser)]
#[command(
    name = "chat-mcp-stdio-bridge",
    version,
    about = "Connects a stdio MCP host to a Streamable HTTP MCP server.",
    long_about = "Connects a stdio MCP host (Claude Desktop, Claude Code, Cursor, VS Code, ...) \
to a Streamable HTTP MCP server. JSON-RPC lines read from stdin are POSTed to the server; \
every message the server sends back (responses, notifications, server-to-client requests, \
including those pushed on the GET stream) is written to stdout, one JSON object per line. \
Logs go to stderr only."
)]
pub struct Args {
    /// Streamable HTTP endpoint of the MCP server (http:// or https://).
    #[arg(long, env = "MCP_CHAT_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// PEM file of certificate authorities to trust for an https:// server, in
    /// addition to the system's (for a private or self-signed CA).
    #[arg(long, env = "MCP_CHAT_CA_CERT", value_name = "PEM_FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Bearer token; sent as `Authorization: Bearer <token>`. `${VAR}` is expanded.
    #[arg(long, env = "MCP_CHAT_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Extra HTTP header "Name: value" sent with every request; repeatable.
    /// `${VAR}` in the value is replaced by that environment variable (a
    /// missing variable is a startup error). In MCP_CHAT_HEADERS, separate
    /// several headers with newlines; it is ignored when --header is given.
    #[arg(
        long = "header",
        short = 'H',
        value_name = "NAME: VALUE",
        env = "MCP_CHAT_HEADERS",
        value_delimiter = '\n',
        hide_env_values = true
    )]
    pub headers: Vec<String>,

    /// Per-request limit in seconds: the longest wait for the server's
    /// response headers, and the longest silence inside a response stream
    /// (keep-alive comments count as activity). 0 disables it.
    #[arg(long, env = "MCP_CHAT_TIMEOUT", default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,

    /// Log level for stderr (error, warn, info, debug, trace) or a full
    /// tracing filter such as "chat_mcp_stdio_bridge=debug,reqwest=info".
    #[arg(long, env = "MCP_CHAT_LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
}

/// Validated configuration the bridge runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: Url,
    /// Custom headers plus `Authorization`, sent on every HTTP request.
    pub headers: HeaderMap,
    /// `None` when the user disabled timeouts with `--timeout 0`.
    pub timeout: Option<Duration>,
    /// Extra trusted certificate authorities (`--ca-cert`).
    pub ca_certs: Vec<reqwest::Certificate>,
}

/// Why the configuration is unusable; printed once at startup.
#[derive(Debug)]
pub enum ConfigError {
    Url(String),
    CaCert(String),
    Header(HeaderError),
    AuthConflict,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Url(msg) => write!(f, "invalid --url: {msg}"),
            ConfigError::CaCert(msg) => write!(f, "invalid --ca-cert: {msg}"),
            ConfigError::Header(e) => write!(f, "{e}"),
            ConfigError::AuthConflict => {
                write!(f, "both --auth-token and an Authorization header were given; use only one")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Args {
    /// Resolves `${VAR}` references and validates everything that can be
    /// checked before the first request, so mistakes surface at startup
    /// instead of as a puzzling error on the host's first tool call.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        self.resolve(&|name| std::env::var(name).ok())
    }

    /// Same as [`Args::into_config`] with an injectable environment (tests).
    pub fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let url = Url::parse(self.url.trim()).map_err(|e| ConfigError::Url(format!("{e}")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(ConfigError::Url(format!(
                    "unsupported scheme {other:?}, expected http:// or https://"
                )));
            }
        }
        let ca_certs = match &self.ca_cert {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| ConfigError::CaCert(format!("cannot read {}: {e}", path.display())))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| ConfigError::CaCert(format!("{}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(ConfigError::CaCert(format!("{} holds no PEM certificate", path.display())));
                }
                certs
            }
        };

        let mut map = HeaderMap::new();
        for spec in self.headers.iter().filter(|s| !s.trim().is_empty()) {
            let (name, value) = headers::parse_header(spec, env).map_err(ConfigError::Header)?;
            map.append(name, value);
        }
        if let Some(token) = &self.auth_token {
            if map.contains_key(AUTHORIZATION) {
                return Err(ConfigError::AuthConflict);
            }
            let token = headers::substitute_env(token, env).map_err(ConfigError::Header)?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| ConfigError::Header(HeaderError::InvalidValue("Authorization".into())))?;
            value.set_sensitive(true);
            map.insert(AUTHORIZATION, value);
        }

        Ok(Config {
            url,
            headers: map,
            timeout: (self.timeout > 0).then(|| Duration::from_secs(self.timeout)),
            ca_certs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["chat-mcp-stdio-bridge"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("arguments parse")
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults() {
        let cfg = args(&[]).resolve(&no_env).expect("valid");
        assert_eq!(cfg.url.as_str(), DEFAULT_URL);
        assert_eq!(cfg.timeout, Some(Duration::from_secs(300)));
        assert!(cfg.headers.is_empty());
    }

    #[test]
    fn auth_token_and_headers() {
        let env = |name: &str| (name == "KEY").then(|| "s3cret".to_string());
        let cfg = args(&[
            "--auth-token",
            "tok",
            "--header",
            "X-Api-Key: ${KEY}",
            "-H",
            "X-Two:2",
            "--timeout",
            "0",
        ])
        .resolve(&env)
        .expect("valid");
        assert_eq!(cfg.headers["authorization"], "Bearer tok");
        assert_eq!(cfg.headers["x-api-key"], "s3cret");
        assert_eq!(cfg.headers["x-two"], "2");
        assert_eq!(cfg.timeout, None);
    }

    #[test]
    fn schemes_ca_files_and_conflicting_auth() {
        assert!(args(&["--url", "https://example.com/mcp"]).resolve(&no_env).is_ok());
        assert!(matches!(
            args(&["--url", "ftp://example.com/mcp"]).resolve(&no_env),
            Err(ConfigError::Url(_))
        ));
        assert!(matches!(
            args(&["--ca-cert", "/nonexistent/ca.pem"]).resolve(&no_env),
            Err(ConfigError::CaCert(_))
        ));
        let not_pem = std::env::temp_dir().join(format!("bridge-not-pem-{}.txt", std::process::id()));
        std::fs::write(&not_pem, "hello").expect("temp file");
        let result = args(&["--ca-cert", not_pem.to_str().expect("utf-8 path")]).resolve(&no_env);
        let _ = std::fs::remove_file(&not_pem);
        assert!(matches!(result, Err(ConfigError::CaCert(_))));
        assert!(matches!(
            args(&["--auth-token", "a", "-H", "Authorization: Bearer b"]).resolve(&no_env),
            Err(ConfigError::AuthConflict)
        ));
    }

    #[test]
    fn missing_env_var_is_an_error() {
        let err = args(&["-H", "X-Key: ${NOPE_NOT_SET}"]).resolve(&no_env).expect_err("must fail");
        assert!(err.to_string().contains("NOPE_NOT_SET"), "{err}");
    }
}
