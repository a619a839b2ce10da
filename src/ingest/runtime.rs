//! Building a live connector from its stored row: decrypt secrets (current, and previous
//! while its rotation grace period lasts) and hand them to the connectors registry.

use chrono::Utc;
use junction_connectors::{Connector, ConnectorKind, Secrets};

use crate::ids::ConnectorId;
use crate::secrets::Cipher;
use crate::store::entities::connector;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("connector kind `{0}` is unknown to this build")]
    UnknownKind(String),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("connector config: {0}")]
    Config(#[from] junction_connectors::ConfigError),
}

/// The connector for a stored row.
pub fn connector_for(cipher: &Cipher, row: &connector::Model) -> Result<Box<dyn Connector>, RuntimeError> {
    let kind = ConnectorKind::parse(&row.kind).map_err(|_| RuntimeError::UnknownKind(row.kind.clone()))?;
    let id = ConnectorId(row.id);
    let current = match &row.secrets_ciphertext {
        Some(ct) => cipher.open(id, ct)?,
        None => Default::default(),
    };
    let previous = match (&row.previous_secrets_ciphertext, row.previous_secrets_expire_at) {
        (Some(ct), Some(until)) if until > Utc::now() => Some(cipher.open(id, ct)?),
        _ => None,
    };
    Ok(junction_connectors::build(kind, &row.config, &Secrets { current, previous })?)
}

/// The connector's configured default phone region (`config.region`), if any.
pub fn region_of(row: &connector::Model) -> Option<String> {
    row.config.get("region").and_then(|r| r.as_str()).map(|r| r.trim().to_ascii_uppercase()).filter(|r| r.len() == 2)
}
