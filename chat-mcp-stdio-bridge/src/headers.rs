//! `--header "Name: value"` parsing and `${VAR}` substitution.
//!
//! Hosts such as Claude Desktop pass `args` verbatim (no shell), so a secret
//! cannot be spliced in with `$VAR`; the bridge expands `${VAR}` itself. A
//! missing variable is an error rather than an empty string: silently sending
//! `Authorization: Bearer ` produces a confusing 401 much later.

use reqwest::header::{HeaderName, HeaderValue};

/// Headers the bridge manages itself; letting the user override them would
/// break the Streamable HTTP session handling.
const RESERVED: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "host",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// A header or `${VAR}` problem found at startup.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No `:` separating name and value.
    MissingColon(String),
    InvalidName(String),
    /// The value (after substitution) contains bytes HTTP forbids.
    InvalidValue(String),
    Reserved(String),
    /// `${VAR}` names an unset variable.
    MissingEnv {
        var: String,
    },
    /// `${` without a closing `}` or with an invalid name.
    BadReference(String),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::MissingColon(spec) => {
                write!(f, "invalid --header {spec:?}: expected \"Name: value\"")
            }
            HeaderError::InvalidName(name) => write!(f, "invalid header name {name:?}"),
            HeaderError::InvalidValue(name) => {
                write!(f, "invalid value for header {name:?} (control characters?)")
            }
            HeaderError::Reserved(name) => {
                write!(f, "header {name:?} is managed by the bridge and cannot be set with --header")
            }
            HeaderError::MissingEnv { var } => {
                write!(f, "environment variable {var} is referenced as ${{{var}}} but is not set")
            }
            HeaderError::BadReference(text) => write!(
                f,
                "bad variable reference in {text:?}: use ${{NAME}} with NAME made of letters, digits and _"
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Parses `Name: value` (the space after `:` is optional) and expands
/// `${VAR}` in the value.
pub fn parse_header(
    spec: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let (name, value) = spec.split_once(':').ok_or_else(|| HeaderError::MissingColon(spec.to_string()))?;
    let name = name.trim();
    let header_name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::InvalidName(name.to_string()))?;
    if RESERVED.contains(&header_name.as_str()) {
        return Err(HeaderError::Reserved(name.to_string()));
    }
    let value = substitute_env(value.trim(), env)?;
    let mut header_value =
        HeaderValue::from_str(&value).map_err(|_| HeaderError::InvalidValue(name.to_string()))?;
    if header_name == reqwest::header::AUTHORIZATION {
        header_value.set_sensitive(true);
    }
    Ok((header_name, header_value))
}

/// Replaces every `${NAME}` with the variable's value. A `$` not followed by
/// `{` is kept literally, so values such as `a$b` need no escaping.
pub fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, HeaderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| HeaderError::BadReference(text.to_string()))?;
        let var = &after[..end];
        let valid = !var.is_empty()
            && !var.starts_with(|c: char| c.is_ascii_digit())
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(HeaderError::BadReference(text.to_string()));
        }
        let value = env(var).ok_or_else(|| HeaderError::MissingEnv { var: var.to_string() })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitution() {
        assert_eq!(substitute_env("Bearer ${TOKEN}", &env), Ok("Bearer abc".into()));
        assert_eq!(substitute_env("${TOKEN}${TOKEN}", &env), Ok("abcabc".into()));
        assert_eq!(substitute_env("a$b ${EMPTY}", &env), Ok("a$b ".into()));
        assert_eq!(
            substitute_env("${MISSING}", &env),
            Err(HeaderError::MissingEnv { var: "MISSING".into() })
        );
        assert!(matches!(substitute_env("${TOKEN", &env), Err(HeaderError::BadReference(_))));
        assert!(matches!(substitute_env("${1A}", &env), Err(HeaderError::BadReference(_))));
    }

    #[test]
    fn header_parsing() {
        let (n, v) = parse_header("X-Key: ${TOKEN}", &env).expect("valid");
        assert_eq!(n.as_str(), "x-key");
        assert_eq!(v, "abc");
        let (n, v) = parse_header("Authorization:Bearer x", &env).expect("valid");
        assert_eq!(n, reqwest::header::AUTHORIZATION);
        assert!(v.is_sensitive());
        assert!(matches!(parse_header("novalue", &env), Err(HeaderError::MissingColon(_))));
        assert!(matches!(parse_header("Mcp-Session-Id: x", &env), Err(HeaderError::Reserved(_))));
        assert!(matches!(parse_header("Bad Name: x", &env), Err(HeaderError::InvalidName(_))));
    }
}
