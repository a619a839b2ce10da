//! Inbox workers: lease due rows, process each in its own transaction, retry failures with
//! capped exponential backoff and jitter, dead-letter after `ingest.max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;

use super::pipeline::process;
use crate::ids::{ConnectorId, InboxId};
use crate::AppState;

/// Delay before attempt `attempts + 1`: 2^attempts seconds, capped at 15 minutes, ±25 % jitter.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let base = 2f64.powi(attempts.clamp(0, 20)).min(900.0);
    let jitter = rand::rng().random_range(0.75..1.25);
    chrono::Duration::milliseconds((base * jitter * 1000.0) as i64)
}

/// Start `n` workers that run until the process ends.
pub fn spawn_workers(state: AppState, wake: Arc<Notify>, n: usize) {
    for _ in 0..n {
        let state = state.clone();
        let wake = wake.clone();
        tokio::spawn(async move {
            loop {
                let worked = match run_once(&state, 16).await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "inbox lease failed");
                        false
                    }
                };
                if !worked {
                    let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
                }
            }
        });
    }
}

/// Lease and process up to `batch` rows once. Returns how many were leased.
pub async fn run_once(state: &AppState, batch: u64) -> Result<usize, crate::store::StoreError> {
    let lease = chrono::Duration::seconds(state.config.ingest.lease_secs as i64);
    let rows = state.store.lease_inbox(batch, lease).await?;
    let n = rows.len();
    for row in rows {
        let id = InboxId(row.id);
        let conn = match state.store.connector(ConnectorId(row.connector_id)).await? {
            Some(c) => c,
            None => continue, // connector deleted: its rows cascade away
        };
        let started = std::time::Instant::now();
        match process(state, &conn, &row).await {
            Ok(changes) => {
                metrics::counter!("junction_inbox_processed_total", "kind" => conn.kind.clone()).increment(1);
                metrics::histogram!("junction_inbox_process_seconds").record(started.elapsed().as_secs_f64());
                for (c, k) in changes {
                    state.notify(c, k);
                }
            }
            Err(e) => {
                let dead = row.attempts >= state.config.ingest.max_attempts;
                tracing::warn!(inbox_id = %id, connector_id = %ConnectorId(row.connector_id), attempts = row.attempts, dead, error = %e, "inbox event failed");
                metrics::counter!("junction_inbox_failed_total", "dead" => if dead { "true" } else { "false" })
                    .increment(1);
                state.store.fail_inbox(id, row.leased_until, &e.to_string(), dead, backoff(row.attempts)).await?;
            }
        }
    }
    Ok(n)
}
