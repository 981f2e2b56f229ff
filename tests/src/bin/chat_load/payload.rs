//! The message body: which stream (sender -> receiver direction) a message belongs to,
//! its sequence number in that stream and the time it was (meant to be) sent. Carrying
//! these in the text lets the receiver check loss, duplication and order and measure
//! latency without any shared state with the sender.

/// Marks a body written by this generator.
const TAG: &str = "cl";

/// What a message body carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The direction it travels (one per sending member).
    pub stream: u32,
    /// 1, 2, 3, ... within the stream.
    pub seq: u64,
    /// Clock reading ([`crate::clock::now_ns`]) the latency is measured from.
    pub sent_ns: u64,
}

impl Payload {
    /// The body, padded with dots to `size` bytes.
    pub fn encode(&self, size: usize) -> String {
        let mut text = format!("{TAG} {} {} {} ", self.stream, self.seq, self.sent_ns);
        if text.len() < size {
            text.extend(std::iter::repeat_n('.', size - text.len()));
        }
        text
    }

    /// Reads a body written by [`Payload::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Payload> {
        let mut parts = text.split(' ');
        if parts.next()? != TAG {
            return None;
        }
        let stream = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let sent_ns = parts.next()?.parse().ok()?;
        Some(Payload { stream, seq, sent_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        let p = Payload { stream: 7, seq: 42, sent_ns: 123_456_789 };
        let text = p.encode(64);
        assert_eq!(text.len(), 64);
        assert_eq!(Payload::decode(&text), Some(p));
        assert_eq!(Payload::decode(&p.encode(0)), Some(p));
        assert_eq!(Payload::decode("hello there"), None);
        assert_eq!(Payload::decode("cl 1 x 3 "), None);
    }
}
