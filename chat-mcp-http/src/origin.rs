//! DNS-rebinding and cross-origin protection for every route.
//!
//! rmcp already checks `Host` and `Origin` on `/mcp`; this layer applies the same rules to
//! `/healthz` and `/metrics` too and answers before any other work is done. The rules
//! match rmcp's so both layers always agree:
//! - `Host` must match an allowed `name` (any port) or `name:port`; an empty list allows all.
//! - `Origin`, when present, must match an allowed `scheme://host[:port]` (`:*` = any port,
//!   no port = the scheme's default port) or `null`. Requests without `Origin` pass: only
//!   browsers send it, and they are what the check protects against. An empty list
//!   disables the Origin check.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, Uri, header};

use crate::metrics::Metrics;

/// A parsed allow-list entry for `Origin`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AllowedOrigin {
    Null,
    Tuple { scheme: String, host: String, port: PortRule },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortRule {
    Any,
    Exact(u16),
}

/// The compiled allow-lists.
#[derive(Clone)]
pub struct OriginGuard {
    hosts: Arc<[(String, Option<u16>)]>,
    origins: Arc<[AllowedOrigin]>,
    metrics: Arc<Metrics>,
}

impl OriginGuard {
    /// Compiles the lists; entries that cannot be parsed are logged and ignored.
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String], metrics: Arc<Metrics>) -> Self {
        let hosts = allowed_hosts.iter().filter_map(|h| parse_authority(h)).collect();
        let origins = allowed_origins
            .iter()
            .filter_map(|o| {
                let parsed = parse_allowed_origin(o);
                if parsed.is_none() {
                    tracing::warn!(origin = %o, "ignoring unparsable --allowed-origin entry");
                }
                parsed
            })
            .collect();
        OriginGuard { hosts, origins, metrics }
    }

    fn host_ok(&self, request: &Request) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let authority = match request.headers().get(header::HOST) {
            Some(value) => value.to_str().ok().and_then(parse_authority),
            None => request.uri().authority().and_then(|a| parse_authority(a.as_str())),
        };
        let Some((host, port)) = authority else {
            return false;
        };
        self.hosts.iter().any(|(h, p)| *h == host && p.is_none_or(|p| Some(p) == port))
    }

    fn origin_ok(&self, request: &Request) -> bool {
        if self.origins.is_empty() {
            return true;
        }
        let Some(value) = request.headers().get(header::ORIGIN) else {
            return true;
        };
        let Some(origin) = value.to_str().ok().and_then(parse_origin) else {
            return false;
        };
        self.origins.iter().any(|allowed| match (allowed, &origin) {
            (AllowedOrigin::Null, AllowedOrigin::Null) => true,
            (
                AllowedOrigin::Tuple { scheme, host, port },
                AllowedOrigin::Tuple { scheme: s, host: h, port: PortRule::Exact(p) },
            ) => {
                scheme == s
                    && host == h
                    && match port {
                        PortRule::Any => true,
                        PortRule::Exact(allowed) => allowed == p,
                    }
            }
            _ => false,
        })
    }
}

/// axum middleware: 403 for a foreign `Host` or `Origin`.
pub async fn check_origin(State(guard): State<OriginGuard>, request: Request, next: Next) -> Response {
    if !guard.host_ok(&request) {
        guard.metrics.count_rejected("host");
        tracing::warn!(host = ?request.headers().get(header::HOST), "rejected request with a disallowed Host header");
        return (StatusCode::FORBIDDEN, "Forbidden: Host header is not allowed\n").into_response();
    }
    if !guard.origin_ok(&request) {
        guard.metrics.count_rejected("origin");
        tracing::warn!(origin = ?request.headers().get(header::ORIGIN), "rejected request with a disallowed Origin header");
        return (StatusCode::FORBIDDEN, "Forbidden: Origin header is not allowed\n").into_response();
    }
    next.run(request).await
}

fn normalize_host(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// `name` or `name:port` (IPv6 in brackets) into a normalised pair.
fn parse_authority(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse::<http::uri::Authority>() {
        Ok(a) => Some((normalize_host(a.host()), a.port_u16())),
        // A bare IPv6 address such as `::1` is not an authority; take it as a host.
        Err(_) => Some((normalize_host(text), None)),
    }
}

/// An `Origin` header value; the port is made explicit from the scheme's default.
fn parse_origin(text: &str) -> Option<AllowedOrigin> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("null") {
        return Some(AllowedOrigin::Null);
    }
    let uri: Uri = text.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let port = authority.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some(AllowedOrigin::Tuple { scheme, host: normalize_host(authority.host()), port: PortRule::Exact(port) })
}

/// An allow-list entry: like an origin, but `:*` means any port.
fn parse_allowed_origin(text: &str) -> Option<AllowedOrigin> {
    let text = text.trim();
    if let Some(base) = text.strip_suffix(":*") {
        let uri: Uri = base.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        if authority.port_u16().is_some() {
            return None;
        }
        return Some(AllowedOrigin::Tuple {
            scheme,
            host: normalize_host(authority.host()),
            port: PortRule::Any,
        });
    }
    parse_origin(text)
}

/// The `--allowed-origin` list in the form rmcp expects: rmcp treats an entry without a
/// port as "any port" (deprecated), so make the scheme's default port explicit.
pub fn origins_for_rmcp(allowed: &[String]) -> Vec<String> {
    allowed
        .iter()
        .filter_map(|o| match parse_allowed_origin(o)? {
            AllowedOrigin::Null => Some("null".to_owned()),
            AllowedOrigin::Tuple { scheme, host, port } => {
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                Some(match port {
                    PortRule::Any => format!("{scheme}://{host}:*"),
                    PortRule::Exact(p) => format!("{scheme}://{host}:{p}"),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn guard() -> OriginGuard {
        let config = crate::config::ServerConfig::default();
        OriginGuard::new(&config.allowed_hosts, &config.allowed_origins, Arc::new(Metrics::default()))
    }

    fn request(host: &str, origin: Option<&str>) -> Request {
        let mut builder = http::Request::builder().uri("/mcp").header(header::HOST, host);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::empty()).expect("valid request")
    }

    #[test]
    fn loopback_hosts_and_origins_pass_by_default() {
        let g = guard();
        for host in ["127.0.0.1:8123", "localhost", "[::1]:80"] {
            assert!(g.host_ok(&request(host, None)), "{host}");
        }
        assert!(!g.host_ok(&request("evil.example:8123", None)));
        assert!(g.origin_ok(&request("localhost", Some("http://localhost:3000"))));
        assert!(g.origin_ok(&request("localhost", Some("http://[::1]"))));
        assert!(!g.origin_ok(&request("localhost", Some("https://evil.example"))));
        assert!(!g.origin_ok(&request("localhost", Some("null"))));
        assert!(!g.origin_ok(&request("localhost", Some("not a url"))));
    }

    #[test]
    fn explicit_ports_and_null_work() {
        let metrics = Arc::new(Metrics::default());
        let g = OriginGuard::new(
            &["chat.example.com:443".into()],
            &["https://app.example.com".into(), "null".into()],
            metrics,
        );
        assert!(g.host_ok(&request("chat.example.com:443", None)));
        assert!(!g.host_ok(&request("chat.example.com:80", None)));
        assert!(g.origin_ok(&request("x", Some("https://app.example.com"))));
        assert!(g.origin_ok(&request("x", Some("https://app.example.com:443"))));
        assert!(!g.origin_ok(&request("x", Some("https://app.example.com:8443"))));
        assert!(g.origin_ok(&request("x", Some("null"))));
        assert_eq!(
            origins_for_rmcp(&["https://app.example.com".into(), "http://[::1]:*".into()]),
            ["https://app.example.com:443", "http://[::1]:*"]
        );
    }
}
