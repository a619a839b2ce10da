//! Opaque keyset cursors: `(timestamp, id)` pairs encoded as URL-safe base64.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A position in an ordering by `(time, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.timestamp_micros(), self.id.simple()))
    }

    pub fn decode(s: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, id) = text.split_once('|')?;
        Some(Self { at: DateTime::from_timestamp_micros(micros.parse().ok()?)?, id: Uuid::parse_str(id).ok()? })
    }
}

/// What page the caller asked for (Relay: `first`/`after` or `last`/`before`).
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u64,
    pub after: Option<Cursor>,
    pub before: Option<Cursor>,
    /// True for `last`/`before`: read backwards, return in forward order.
    pub backward: bool,
}

/// A page of rows plus whether more exist beyond it in the direction read.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_rejected() {
        let c = Cursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
    }
}
