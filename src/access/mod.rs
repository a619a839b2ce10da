//! Who may do what. API keys carry a role; a role grants permissions; every root field of
//! the GraphQL API requires one permission (one table, [`required`], deny by default);
//! personal data is masked for callers without `pii`.

pub mod guard;
pub mod keys;

use serde::{Deserialize, Serialize};

use crate::ids::ApiKeyId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including connectors, keys, the audit log, exports and erasure.
    Admin,
    /// Read and change customers, with personal data.
    Editor,
    /// Read customers; emails and phones are masked.
    Viewer,
    /// Only send data in (upsertCustomer, addEvent, setConsent).
    Ingest,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Editor, Role::Viewer, Role::Ingest];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim().to_ascii_lowercase())
    }

    pub fn has(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Editor => matches!(p, Read | Write | Ingest | Pii),
            Role::Viewer => matches!(p, Read),
            Role::Ingest => matches!(p, Ingest),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read customer data (masked without `Pii`).
    Read,
    /// Change customer data.
    Write,
    /// Send data in.
    Ingest,
    /// See emails, phones and addresses in clear.
    Pii,
    /// Connectors, keys, audit, merges review, exports, erasure.
    Admin,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub key_id: ApiKeyId,
    pub role: Role,
}

impl Caller {
    pub fn can(&self, p: Permission) -> bool {
        self.role.has(p)
    }

    /// The audit actor name (never the key itself).
    pub fn actor(&self) -> String {
        format!("key:{}", self.key_id)
    }
}

/// Verified keys by hash, kept for [`KeyCache::TTL`]. A revocation clears this process's
/// cache at once; other instances stop accepting a revoked key within the TTL.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (Caller, std::time::Instant)>>,
}

impl KeyCache {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn get(&self, hash: &str) -> Option<Caller> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash).filter(|(_, at)| at.elapsed() < Self::TTL).map(|(c, _)| *c)
    }

    pub fn put(&self, hash: String, caller: Caller) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < Self::TTL);
        }
        map.insert(hash, (caller, std::time::Instant::now()));
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The permission a root field needs. Fields not listed need `Admin` (deny by default).
pub fn required(operation: OperationKind, field: &str) -> Permission {
    use OperationKind::*;
    use Permission::*;
    match (operation, field) {
        (_, "__typename") => Ingest,
        (Query, "__schema" | "__type") => Read,
        (Query, "customer" | "customers" | "customerByIdentity" | "explainMatch" | "mergeCandidates") => Read,
        (Subscription, "customerChanged") => Read,
        (Mutation, "upsertCustomer" | "addEvent" | "setConsent") => Ingest,
        (Mutation, "updateCustomer" | "deleteCustomer") | (Query, "previewMerge") => Write,
        _ => Admin,
    }
}

/// Whether `role` may call a root field (`__typename` is harmless for any key).
pub fn allowed(role: Role, operation: OperationKind, field: &str) -> bool {
    field == "__typename" || role.has(required(operation, field))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

/// `a***@domain` for emails.
pub fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

/// Keep a leading `+`, the first two and the last two digits.
pub fn mask_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let n = chars.len();
    chars.iter().enumerate().map(|(i, c)| if i < 3 || i + 2 >= n { *c } else { '*' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_little() {
        assert_eq!(mask_email("ann.lee@acme.io"), "a***@acme.io");
        assert_eq!(mask_phone("+4915112345678"), "+49*********78");
    }

    #[test]
    fn unknown_fields_need_admin() {
        assert!(!allowed(Role::Editor, OperationKind::Mutation, "somethingNew"));
        assert!(allowed(Role::Admin, OperationKind::Mutation, "somethingNew"));
        assert!(allowed(Role::Ingest, OperationKind::Mutation, "upsertCustomer"));
        assert!(!allowed(Role::Ingest, OperationKind::Query, "customers"));
        assert!(!allowed(Role::Viewer, OperationKind::Mutation, "updateCustomer"));
    }
}
