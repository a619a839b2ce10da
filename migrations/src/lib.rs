//! Junction's schema, one module per migration, backend-neutral (SQLite and PostgreSQL).

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_identity_rules;
mod m20261123_000003_sync;
mod m20261123_000004_access;
mod m20261124_000005_lean_identity_indexes;
mod m20261124_000006_set_aside_key_index;
mod m20261124_000007_no_json_statistics;
mod m20261125_000008_identity_key_hash;
mod m20261125_000009_deferred_customer_references;

/// The digest an identity is found and kept unique by (`identities.key_hash`): the first 16
/// bytes of SHA-256 over the key's three parts, each preceded by its length in bytes (so no
/// two keys share an input), as a UUID. It is part of the schema: stored rows depend on it,
/// so it never changes.
pub fn identity_key_hash(kind: &str, namespace: &str, value: &str) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [kind, namespace, value] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(out)
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_identity_rules::Migration),
            Box::new(m20261123_000003_sync::Migration),
            Box::new(m20261123_000004_access::Migration),
            Box::new(m20261124_000005_lean_identity_indexes::Migration),
            Box::new(m20261124_000006_set_aside_key_index::Migration),
            Box::new(m20261124_000007_no_json_statistics::Migration),
            Box::new(m20261125_000008_identity_key_hash::Migration),
            Box::new(m20261125_000009_deferred_customer_references::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::identity_key_hash;

    fn hex(u: uuid::Uuid) -> String {
        u.simple().to_string()
    }

    /// Stored rows depend on these digests: they must never change (values from Python's
    /// `hashlib.sha256` over the same length-prefixed input).
    #[test]
    fn key_hash_is_pinned() {
        assert_eq!(hex(identity_key_hash("email", "", "ana@example.com")), "abc91ef61806019d291abd2f18765709");
        assert_eq!(hex(identity_key_hash("external_id", "shopify", "42")), "17762903fda0c110d29043f08f45621c");
    }

    /// Length prefixes keep a separator inside a part from making two keys one.
    #[test]
    fn parts_do_not_run_together() {
        assert_ne!(identity_key_hash("external_id", "a|b", "c"), identity_key_hash("external_id", "a", "b|c"));
        assert_ne!(identity_key_hash("external_id", "ab", ""), identity_key_hash("external_id", "a", "b"));
    }
}
