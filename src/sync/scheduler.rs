//! The pull scheduler: every `sync.tick_secs`, start an incremental run of each active
//! connector that can pull (its kind has a pull API, its `config.pull` is valid and its
//! credential is set) and whose `pull.interval_secs` (default 900; 0 = on demand only) has
//! passed since its latest run started.
//!
//! Several hub processes may share one PostgreSQL: each runs this loop, and the pull lock
//! ([`crate::store::Store::try_lock_sync`]) lets exactly one of them pull a connector at a
//! time; the others see `Busy` and skip it.

use std::time::Duration;

use chrono::Utc;

use super::runner::{prepare, puller_for, SyncError, SyncMode};
use crate::ids::ConnectorId;
use crate::AppState;

/// Start the scheduler loop; it runs until the process ends.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let tick = Duration::from_secs(state.config.sync.tick_secs);
        loop {
            if let Err(e) = tick_once(&state).await {
                tracing::warn!(error = %e, "pull scheduler tick failed");
            }
            tokio::time::sleep(tick).await;
        }
    });
}

/// Start every due run once. Returns how many were started.
pub async fn tick_once(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let mut started = 0;
    for conn in state.store.connectors().await? {
        let id = ConnectorId(conn.id);
        if conn.status != "active" || conn.config.get("pull").is_none() || state.sync.is_running(id) {
            continue;
        }
        let Ok(puller) = puller_for(state, &conn) else { continue };
        let interval = puller.settings().interval_secs;
        if interval == 0 {
            continue;
        }
        let due = match state.store.last_sync_started(id).await? {
            Some(last) => Utc::now() >= last + chrono::Duration::seconds(interval as i64),
            None => true,
        };
        if !due {
            continue;
        }
        match prepare(state, id, SyncMode::Incremental).await {
            Ok(run) => {
                started += 1;
                tokio::spawn(run.execute());
            }
            Err(SyncError::Busy) => {}
            Err(e) => tracing::warn!(connector_id = %id, error = %e, "scheduled pull not started"),
        }
    }
    Ok(started)
}
