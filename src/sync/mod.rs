//! Pull sync: the hub side of pulling from platform APIs.
//!
//! Connectors only translate (a page request given a cursor, records and the next cursor
//! from the answer); this module owns the rest:
//! - [`SyncHub`]: one [`PullClient`] per connector (so one rate limiter and one circuit
//!   breaker per credential), the set of pulls running in this process, and the progress
//!   channel behind the `syncProgress` subscription;
//! - [`runner`]: one run of one connector, page by page, each page's records and the
//!   stream's cursor committed in one transaction;
//! - [`scheduler`]: starts incremental runs when a connector's interval has passed.

pub mod runner;
pub mod scheduler;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use junction_connectors::http::{ClientSettings, PullClient};
use junction_connectors::pull::RateQuota;
use tokio::sync::broadcast;

use crate::config::SyncConfig;
use crate::ids::ConnectorId;

pub use runner::{prepare, PreparedRun, SyncError, SyncMode};

/// A pull run's progress, published after every committed page and at the end.
#[derive(Debug, Clone)]
pub struct SyncProgress {
    pub connector_id: ConnectorId,
    pub run_id: uuid::Uuid,
    pub mode: SyncMode,
    /// The stream of the last page (`customers`, `orders`, …).
    pub stream: String,
    pub pages: i64,
    pub records: i64,
    pub errors: i64,
    /// `running`, `succeeded`, `failed`.
    pub state: String,
    pub at: DateTime<Utc>,
}

/// Pull clients and running pulls of this process.
pub struct SyncHub {
    settings: ClientSettings,
    clients: Mutex<HashMap<ConnectorId, (String, Arc<PullClient>)>>,
    running: Arc<Mutex<HashSet<ConnectorId>>>,
    /// Progress of every run in this process.
    pub progress: broadcast::Sender<SyncProgress>,
    /// Who runs pulls here (`host:pid`), recorded on each run.
    pub owner: String,
}

impl SyncHub {
    pub fn new(config: &SyncConfig) -> Self {
        let settings = ClientSettings {
            timeout: Duration::from_secs(config.request_timeout_secs),
            connect_timeout: Duration::from_secs(config.request_timeout_secs.min(10)),
            max_retries: config.max_retries,
            max_rate_limited_retries: config.max_rate_limited_retries,
            base_backoff: Duration::from_millis(config.base_backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms.max(config.base_backoff_ms)),
            max_retry_after: Duration::from_secs(config.max_retry_after_secs),
            breaker_threshold: config.breaker_threshold,
            breaker_cooldown: Duration::from_secs(config.breaker_cooldown_secs),
            allow_any_host: config.allow_custom_hosts,
        };
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Self {
            settings,
            clients: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashSet::new())),
            progress: broadcast::channel(1024).0,
            owner: format!("{host}:{}", std::process::id()),
        }
    }

    /// The connector's client, rebuilt when its quota or credentials changed (`version`
    /// identifies the connector row's state); the limiter and breaker survive across runs.
    pub fn client(
        &self,
        id: ConnectorId,
        quota: RateQuota,
        version: &str,
    ) -> Result<Arc<PullClient>, junction_connectors::PullError> {
        let key = format!("{quota:?}|{version}");
        let mut clients = self.clients.lock().map_err(|_| poisoned())?;
        if let Some((k, c)) = clients.get(&id) {
            if *k == key {
                return Ok(c.clone());
            }
        }
        let client = Arc::new(PullClient::new(quota, self.settings.clone())?);
        clients.insert(id, (key, client.clone()));
        Ok(client)
    }

    /// Mark a connector as pulling in this process; `None` when it already is.
    pub fn claim(&self, id: ConnectorId) -> Option<LocalClaim> {
        let mut running = self.running.lock().ok()?;
        running.insert(id).then(|| LocalClaim { id, running: self.running.clone() })
    }

    /// Whether this process is pulling the connector now.
    pub fn is_running(&self, id: ConnectorId) -> bool {
        self.running.lock().map(|r| r.contains(&id)).unwrap_or(false)
    }
}

fn poisoned() -> junction_connectors::PullError {
    junction_connectors::PullError::Exhausted { attempts: 0, last: "sync state poisoned".into() }
}

/// This process's claim on a connector's pull; released on drop.
pub struct LocalClaim {
    id: ConnectorId,
    running: Arc<Mutex<HashSet<ConnectorId>>>,
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&self.id);
        }
    }
}
