//! Inbox workers: lease due rows, apply them in batches (one transaction per batch; events
//! resolved together on the bulk path, a savepoint per segment, see
//! `pipeline::process_batch`), run any event that failed in a batch alone in its own
//! transaction, retry failures with capped exponential backoff and jitter, dead-letter
//! after `ingest.max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;

use super::pipeline::{process_batch_with, process_leased, BatchOutcome, Leased, ProcessError};
use super::runtime::{LiveConnector, LoadError};
use crate::ids::{ConnectorId, InboxId};
use crate::store::entities::inbox;
use crate::{AppState, ChangeKind};

/// Rows one worker leases at a time (SQLite; see [`lease_batch`]).
pub const LEASE_BATCH: u64 = 64;

/// Rows a worker leases at a time. A batch's events are resolved together (see
/// `pipeline::process_batch`), so a larger batch costs fewer statements per event. On SQLite
/// the batch holds the single writer that webhook deliveries also wait for, so it stays at
/// [`LEASE_BATCH`]; on PostgreSQL it blocks nobody but holders of the same identity keys.
pub fn lease_batch(state: &AppState) -> u64 {
    if state.store.is_postgres() {
        4 * LEASE_BATCH
    } else {
        LEASE_BATCH
    }
}

/// Longest a worker waits for waiting webhook deliveries before its next batch (SQLite).
const GIVE_WAY: Duration = Duration::from_millis(5);

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
                let worked = match run_once(&state, lease_batch(&state)).await {
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

/// How long one batch transaction may keep taking events. On SQLite the transaction holds
/// the single writer (webhook inserts wait for it), so it stays short; on PostgreSQL a
/// longer batch saves commits (each one an fsync) and blocks nobody but holders of the
/// same identity keys.
fn batch_budget(state: &AppState) -> Duration {
    if state.store.is_postgres() {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(20)
    }
}

/// Most rows applied together on the bulk path. On SQLite a segment holds the single writer
/// from start to end and a batch can only end (and let a waiting delivery in) between
/// segments: with the whole lease of 64 as one segment, deliveries waited behind ~30 ms of
/// processing and acceptance p99 passed 100 ms. 16 keeps most of the bulk path's gain.
fn segment_rows(state: &AppState) -> usize {
    if state.store.is_postgres() {
        usize::MAX
    } else {
        16
    }
}

/// Lease and process up to `batch` rows once. Returns how many were leased.
pub async fn run_once(state: &AppState, batch: u64) -> Result<usize, crate::store::StoreError> {
    let lease = chrono::Duration::seconds(state.config.ingest.lease_secs as i64);
    let rows = state.store.lease_inbox(batch, lease).await?;
    let n = rows.len();
    let mut ready: Vec<(Arc<LiveConnector>, inbox::Model)> = Vec::with_capacity(n);
    for row in rows {
        match state.connectors.get(&state.store, &state.cipher, ConnectorId(row.connector_id)).await {
            Ok(Some(live)) => ready.push((live, row)),
            Ok(None) => {} // connector deleted: its rows cascade away
            Err(LoadError::Store(e)) => return Err(e),
            Err(LoadError::Build(e)) => failed(state, &row, &ProcessError::Connector(e.to_string())).await?,
        }
    }
    // Read each row's records once, before any write transaction: parse, or re-fetch from
    // the platform (concurrently; the connector's pull client paces the requests).
    let ready: Vec<Leased> =
        futures::future::join_all(ready.into_iter().map(|(live, row)| Leased::read(state, live, row))).await;
    let budget = batch_budget(state);
    let segment = segment_rows(state);
    let mut rest = &ready[..];
    while !rest.is_empty() {
        // SQLite: let waiting webhook deliveries have the single writer first (a no-op on
        // PostgreSQL, where they do not wait for workers).
        state.inbox_writer.give_way(GIVE_WAY).await;
        let started = std::time::Instant::now();
        let outcomes = if rest.len() == 1 {
            vec![BatchOutcome::RunAlone]
        } else {
            process_batch_with(state, rest, budget, segment).await
        };
        let taken = outcomes.len().max(1);
        let applied = outcomes.iter().filter(|o| matches!(o, BatchOutcome::Applied(_))).count().max(1);
        let per_event = started.elapsed().as_secs_f64() / applied as f64;
        for (leased, outcome) in rest.iter().zip(outcomes) {
            match outcome {
                BatchOutcome::Applied(changes) => done(state, &leased.live, changes, per_event),
                BatchOutcome::RunAlone => alone(state, leased).await?,
            }
        }
        rest = &rest[taken.min(rest.len())..];
    }
    Ok(n)
}

/// Process one row in its own transaction, recording its failure (retry or dead letter).
async fn alone(state: &AppState, leased: &Leased) -> Result<(), crate::store::StoreError> {
    let started = std::time::Instant::now();
    match process_leased(state, leased).await {
        Ok(changes) => {
            done(state, &leased.live, changes, started.elapsed().as_secs_f64());
            Ok(())
        }
        Err(e) => failed(state, &leased.row, &e).await,
    }
}

fn done(state: &AppState, live: &LiveConnector, changes: Vec<(crate::ids::CustomerId, ChangeKind)>, seconds: f64) {
    metrics::counter!("junction_inbox_processed_total", "kind" => live.row.kind.clone()).increment(1);
    metrics::histogram!("junction_inbox_process_seconds").record(seconds);
    for (c, k) in changes {
        state.notify(c, k);
    }
}

async fn failed(state: &AppState, row: &inbox::Model, e: &ProcessError) -> Result<(), crate::store::StoreError> {
    let id = InboxId(row.id);
    let dead = row.attempts >= state.config.ingest.max_attempts || e.is_permanent();
    tracing::warn!(inbox_id = %id, connector_id = %ConnectorId(row.connector_id), attempts = row.attempts, dead, error = %e, "inbox event failed");
    metrics::counter!("junction_inbox_failed_total", "dead" => if dead { "true" } else { "false" }).increment(1);
    state.store.fail_inbox(id, row.leased_until, &e.to_string(), dead, backoff(row.attempts)).await
}
