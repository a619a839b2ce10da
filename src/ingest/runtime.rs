//! Building a live connector from its stored row: decrypt secrets (current, and previous
//! while its rotation grace period lasts) and hand them to the connectors registry; and the
//! per-process cache of live connectors used by the webhook and inbox hot paths.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use junction_connectors::{Connector, ConnectorKind, Secrets};

use crate::ids::ConnectorId;
use crate::secrets::Cipher;
use crate::store::entities::connector;
use crate::store::Store;

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

/// A connector row with its live connector (secrets opened), as cached per process.
pub struct LiveConnector {
    pub row: connector::Model,
    pub connector: Box<dyn Connector>,
    /// After this the entry must be rebuilt: the TTL, or earlier when the previous secret's
    /// grace period ends (it was opened while still valid).
    stale_at: Instant,
}

impl std::fmt::Debug for LiveConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets: only what identifies the entry.
        f.debug_struct("LiveConnector").field("id", &self.row.id).field("kind", &self.row.kind).finish_non_exhaustive()
    }
}

/// Connectors by id with their secrets already opened, so a webhook delivery or an inbox
/// event costs neither a connector query nor an AES-GCM open.
///
/// Admin mutations (update, rotate, disable, enable, delete) call [`ConnectorCache::invalidate`]
/// after their commit, so this process sees the change at once. Other processes sharing the
/// database (a second replica, the CLI) see it within [`ConnectorCache::TTL`]. An entry never
/// outlives the grace period of the previous secret it was built with.
#[derive(Default)]
pub struct ConnectorCache {
    entries: Mutex<HashMap<ConnectorId, Arc<LiveConnector>>>,
    /// Bumped by every invalidation; a load that started before an invalidation is not
    /// cached (it may have read the row before the change committed).
    generation: AtomicU64,
}

impl std::fmt::Debug for ConnectorCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorCache").finish_non_exhaustive()
    }
}

/// Why a connector could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("connector lookup failed: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Build(#[from] RuntimeError),
}

impl ConnectorCache {
    /// How long another process's change can go unseen here.
    pub const TTL: Duration = Duration::from_secs(5);

    /// The live connector `id`, from the cache or freshly loaded; `None` when no such row.
    /// Disabled connectors are returned too (callers look at `row.status`).
    pub async fn get(
        &self,
        store: &Store,
        cipher: &Cipher,
        id: ConnectorId,
    ) -> Result<Option<Arc<LiveConnector>>, LoadError> {
        if let Some(hit) = self.cached(id) {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(row) = store.connector(id).await? else {
            return Ok(None);
        };
        let connector = connector_for(cipher, &row)?;
        let mut stale_at = Instant::now() + Self::TTL;
        if let Some(until) = row.previous_secrets_expire_at {
            let left = (until - Utc::now()).to_std().unwrap_or_default();
            stale_at = stale_at.min(Instant::now() + left);
        }
        let live = Arc::new(LiveConnector { row, connector, stale_at });
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) == generation {
            if map.len() >= 10_000 {
                let now = Instant::now();
                map.retain(|_, e| e.stale_at > now);
            }
            map.insert(id, live.clone());
        }
        Ok(Some(live))
    }

    fn cached(&self, id: ConnectorId) -> Option<Arc<LiveConnector>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id).filter(|e| e.stale_at > Instant::now()).cloned()
    }

    /// Forget `id` (call after a committed change to its row).
    pub fn invalidate(&self, id: ConnectorId) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(&id);
    }
}
