//! Typed ids: no bare `Uuid` crosses a module boundary.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7 keeps B-tree inserts local).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parse the public form (`prefix_<uuid>`), or a bare UUID.
            pub fn parse(s: &str) -> Result<Self, uuid::Error> {
                let s = s.trim();
                let raw = s.strip_prefix(concat!($prefix, "_")).unwrap_or(s);
                Uuid::parse_str(raw).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "_{}"), self.0.simple())
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

typed_id!(
    /// A customer (golden record).
    CustomerId,
    "cus"
);
typed_id!(
    /// A configured connector instance.
    ConnectorId,
    "con"
);
typed_id!(
    /// A timeline event.
    EventId,
    "evt"
);
typed_id!(
    /// An order.
    OrderId,
    "ord"
);
typed_id!(
    /// A merge in the ledger.
    MergeId,
    "mrg"
);
typed_id!(
    /// An inbox row.
    InboxId,
    "inb"
);
typed_id!(
    /// An identity row.
    IdentityId,
    "idn"
);
typed_id!(
    /// A source record.
    SourceRecordId,
    "src"
);
typed_id!(
    /// An API key.
    ApiKeyId,
    "key"
);

typed_id!(
    /// A merge candidate in the review queue.
    MergeCandidateId,
    "mcd"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_form_round_trips_and_bare_uuid_parses() {
        let id = CustomerId::new();
        let text = id.to_string();
        assert!(text.starts_with("cus_"));
        assert_eq!(CustomerId::parse(&text).ok(), Some(id));
        assert_eq!(CustomerId::parse(&id.0.to_string()).ok(), Some(id));
        assert!(CustomerId::parse("cus_nope").is_err());
    }
}
