//! Identifiers: the session handle, generated ids and tokens, and validation of the
//! ids and names that participants choose.

use std::fmt;
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::error::ChatError;

/// A connection as the core knows it: handed out by [`crate::Chat::open_session`].
/// One MCP session of the adapter maps to one `SessionId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// A message id: a random 64-bit number, written `m_` + 16 lowercase hex digits.
///
/// Kept as the number and formatted only when serialized, so making one on every message
/// costs no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m_{:016x}", self.0)
    }
}

impl std::str::FromStr for MessageId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.strip_prefix("m_")
            .filter(|hex| hex.len() == 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(MessageId)
            .ok_or_else(|| format!("not a message id: {text}"))
    }
}

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The core's only source of randomness: ChaCha20 seeded from the config.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Ids {
    rng: ChaCha20Rng,
}

impl Ids {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        Ids { rng: ChaCha20Rng::from_seed(seed) }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub(crate) fn message_id(&mut self) -> MessageId {
        MessageId(self.next_u64())
    }

    /// `prefix` (at most 4 bytes) + 16 lowercase hex digits of a fresh random number.
    /// Written by hand into a stack buffer: ids are made on every message, and this
    /// costs one allocation where `format!` costs two and a formatter.
    pub(crate) fn tagged(&mut self, prefix: &str) -> (u64, Arc<str>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next_u64();
        let mut buf = [0u8; 20];
        let p = prefix.len().min(4);
        buf[..p].copy_from_slice(&prefix.as_bytes()[..p]);
        for (i, b) in buf[p..p + 16].iter_mut().enumerate() {
            *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        (n, Arc::from(std::str::from_utf8(&buf[..p + 16]).unwrap_or_default()))
    }

    /// A 128-bit secret as `rt_` + 32 hex digits.
    pub(crate) fn resume_token(&mut self) -> Arc<str> {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!("rt_{a:016x}{b:016x}").into()
    }
}

/// Parses a room id (`r_` + 16 lowercase hex digits) back into its key. Anything else
/// is `None`. Runs on every room message, so it works on bytes.
pub(crate) fn parse_room_id(text: &str) -> Option<u64> {
    let hex = text.strip_prefix("r_")?.as_bytes();
    if hex.len() != 16 {
        return None;
    }
    hex.iter().try_fold(0u64, |acc, &b| {
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(nibble))
    })
}

/// Compares two secrets in time independent of where they first differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A user id / client id: 1..=`max_id_chars` of ASCII letters, digits, `-_.@:`.
pub(crate) fn validate_id(field: &'static str, id: &str, limits: &Limits) -> Result<(), ChatError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.@:".contains(c);
    if id.is_empty() || id.chars().count() > limits.max_id_chars || !id.chars().all(ok_char) {
        return Err(ChatError::InvalidId { field, max: limits.max_id_chars });
    }
    Ok(())
}

/// Trims a human-readable label and checks its length and characters.
pub(crate) fn clean_label(field: &'static str, text: &str, max_chars: usize) -> Result<Arc<str>, ChatError> {
    let text = text.trim();
    let len = text.chars().count();
    if len == 0 || len > max_chars {
        return Err(ChatError::InvalidText {
            field,
            problem: format!("must be 1 to {max_chars} characters after trimming, got {len}"),
        });
    }
    if text.chars().any(char::is_control) {
        return Err(ChatError::InvalidText { field, problem: "must not contain control characters".into() });
    }
    Ok(text.into())
}

/// Normalises a list of interests or capabilities: trimmed, lowercase (interests only),
/// no duplicates, order kept.
pub(crate) fn clean_list(
    field: &'static str,
    items: &[String],
    max_items: usize,
    max_chars: usize,
    lowercase: bool,
) -> Result<Vec<Arc<str>>, ChatError> {
    let mut out: Vec<Arc<str>> = Vec::with_capacity(items.len().min(max_items));
    for item in items {
        let item = if lowercase { item.to_lowercase() } else { item.clone() };
        let item = clean_label(field, &item, max_chars)?;
        if !out.contains(&item) {
            out.push(item);
        }
    }
    if out.len() > max_items {
        return Err(ChatError::InvalidText {
            field,
            problem: format!("at most {max_items} entries are allowed, got {}", out.len()),
        });
    }
    Ok(out)
}

/// A message body: non-empty, within `max_message_bytes`, and free of control characters
/// other than newline, carriage return and tab (so it cannot drive a reader's terminal).
/// Runs on every message: pure-ASCII text (the common case) is checked byte by byte.
/// Characters that render as nothing on their own: zero-width spaces and joiners,
/// direction marks and isolates, word joiners and invisible operators, the byte-order
/// mark, the soft hyphen, variation selectors and Hangul fillers. A message made only of
/// these (and whitespace) is empty to a reader.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

pub(crate) fn validate_message(text: &str, limits: &Limits) -> Result<(), ChatError> {
    if text.len() > limits.max_message_bytes {
        return Err(ChatError::MessageTooLarge { bytes: text.len(), max: limits.max_message_bytes });
    }
    let allowed = |c: char| !c.is_control() || matches!(c, '\n' | '\r' | '\t');
    let (clean, visible) = if text.is_ascii() {
        let bytes = text.as_bytes();
        (bytes.iter().all(|&b| allowed(char::from(b))), bytes.iter().any(|b| !b.is_ascii_whitespace()))
    } else {
        (text.chars().all(allowed), text.chars().any(|c| !c.is_whitespace() && !is_invisible(c)))
    };
    if !visible {
        return Err(ChatError::EmptyMessage);
    }
    if !clean {
        return Err(ChatError::InvalidText {
            field: "message",
            problem: "must not contain control characters other than newline and tab".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_round_trip_and_reject_lookalikes() {
        let mut ids = Ids::new([7; 32]);
        let (n, text) = ids.tagged("r_");
        assert_eq!(parse_room_id(&text), Some(n));
        for bad in [
            "",
            "r_",
            "r_123",
            "x_0000000000000000",
            "r_000000000000000G",
            "r_0000000000000000a",
            "r_ABCDEF0000000000",
        ] {
            assert_eq!(parse_room_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn message_ids_round_trip_as_text() {
        let id = Ids::new([3; 32]).message_id();
        let text = serde_json::to_string(&id).unwrap();
        assert_eq!(text.len(), 2 + 18);
        assert_eq!(serde_json::from_str::<MessageId>(&text).unwrap(), id);
        assert!("m_12".parse::<MessageId>().is_err());
    }

    #[test]
    fn ids_are_deterministic_per_seed() {
        let (mut a, mut b) = (Ids::new([1; 32]), Ids::new([1; 32]));
        assert_eq!(a.resume_token(), b.resume_token());
        assert_ne!(Ids::new([2; 32]).resume_token(), Ids::new([1; 32]).resume_token());
    }

    #[test]
    fn validates_ids_names_and_messages() {
        let l = Limits::default();
        assert!(validate_id("user_id", "alice-1@host:dev_2.x", &l).is_ok());
        for bad in ["", "has space", "ümlaut", &"x".repeat(65), "semi;colon"] {
            assert!(validate_id("user_id", bad, &l).is_err(), "{bad}");
        }
        assert_eq!(&*clean_label("display_name", "  Ann  ", 64).unwrap(), "Ann");
        assert!(clean_label("display_name", "   ", 64).is_err());
        assert!(clean_label("display_name", "a\u{1b}[31m", 64).is_err());
        assert!(clean_label("display_name", &"é".repeat(64), 64).is_ok());
        assert!(clean_label("display_name", &"é".repeat(65), 64).is_err());
        assert!(validate_message("hi\nthere\t!", &l).is_ok());
        assert_eq!(validate_message(" \n ", &l), Err(ChatError::EmptyMessage));
        assert!(validate_message("bell\u{7}", &l).is_err());
        assert!(validate_message("c1 control \u{85} é", &l).is_err());
        assert!(validate_message("é\u{3000}ok", &l).is_ok());
        assert_eq!(validate_message("\u{3000}\u{2003}", &l), Err(ChatError::EmptyMessage));
        for invisible in
            ["\u{200B}", "\u{200B}\u{200C}\u{200D}\u{FEFF}", " \u{2060}\u{00AD} ", "\u{3164}\u{FE0F}"]
        {
            assert_eq!(validate_message(invisible, &l), Err(ChatError::EmptyMessage), "{invisible:?}");
        }
        assert!(validate_message("a\u{200B}b", &l).is_ok());
        assert!(
            validate_message("\u{1F44D}\u{FE0F}", &l).is_ok(),
            "an emoji with a variation selector is visible"
        );
        assert!(matches!(
            validate_message(&"x".repeat(16 * 1024 + 1), &l),
            Err(ChatError::MessageTooLarge { .. })
        ));
        let list =
            clean_list("interests", &["Rust".into(), "rust ".into(), "go".into()], 10, 32, true).unwrap();
        assert_eq!(list.iter().map(|s| &**s).collect::<Vec<_>>(), ["rust", "go"]);
        let eleven: Vec<String> = (0..11).map(|i| format!("i{i}")).collect();
        assert!(clean_list("interests", &eleven, 10, 32, true).is_err());
        assert!(
            constant_time_eq("rt_ab", "rt_ab")
                && !constant_time_eq("rt_ab", "rt_ac")
                && !constant_time_eq("a", "ab")
        );
    }
}
