//! One error type: a message with its context. The generator only reports errors (counts
//! them and shows a few samples), so a readable chain matters more than matching on kinds.

use std::fmt;

/// An error with enough context to act on.
#[derive(Debug)]
pub struct Error(String);

/// The generator's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }

    /// Prefixes the message with what was being done.
    pub fn context(self, what: &str) -> Self {
        Error(format!("{what}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error(error.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error(format!("bad JSON: {error}"))
    }
}
