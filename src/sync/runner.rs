//! One pull run of one connector.
//!
//! Per stream, the cursor (`sync_cursors.state`) holds:
//! - `watermark`: the greatest `(updated_at, id)` of a completed pull;
//! - `run`: the pull in progress, if any: its mode, the token of the next page to fetch,
//!   the lower bound `since` it filters on, and the greatest position seen so far.
//!
//! Each page's records are applied (identity resolution, orders, timeline) and the cursor
//! advanced to the next page in **one** transaction, so a crash leaves either the whole
//! page with its cursor or neither: the next run resumes at the first page not committed,
//! with no gap and no duplicate. When the last page commits, `watermark` becomes the
//! greatest position seen and `run` is cleared.
//!
//! Incremental pulls keep only records strictly after the watermark on `(updated_at, id)`:
//! the request may ask for `updated_at >= watermark` (inclusive platform filters), and a
//! record sharing the watermark's timestamp is kept only when its id is greater.
//! A backfill ignores the watermark and reads everything; an interrupted backfill is resumed
//! by the next run, whatever its mode, before any incremental pull.

use std::sync::Arc;

use chrono::Utc;
use junction_connectors::http::PullClient;
use junction_connectors::pull::{PullPosition, Watermark};
use junction_connectors::{ConnectorKind, PullError, Puller, Secrets};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{LocalClaim, SyncProgress};
use crate::ids::ConnectorId;
use crate::ingest::pipeline::apply_records;
use crate::store::entities::connector;
use crate::store::sync::{run_state, sync_run, SyncLock};
use crate::store::StoreError;
use crate::AppState;

/// How a run reads a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Only what changed since the last completed pull.
    Incremental,
    /// Everything, from the first page.
    Backfill,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incremental => "incremental",
            Self::Backfill => "backfill",
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("connector not found")]
    NotFound,
    #[error("the connector is disabled")]
    Disabled,
    #[error("{0} connectors cannot pull")]
    NotPullable(String),
    #[error("the connector is not set up for pulling: {0}")]
    Config(String),
    #[error("a pull of this connector is already running")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state of one stream's pull, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CursorState {
    #[serde(default)]
    pub watermark: Option<Watermark>,
    #[serde(default)]
    pub run: Option<RunCursor>,
    /// When a pull of this stream last completed.
    #[serde(default)]
    pub completed_at: Option<chrono::DateTime<Utc>>,
}

/// A pull in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunCursor {
    pub mode: SyncMode,
    /// The platform's token for the next page; `null` before the first page.
    pub page: Option<Value>,
    /// Records at or before this position are skipped (incremental runs).
    pub since: Option<Watermark>,
    /// The greatest position committed by this run.
    pub high: Option<Watermark>,
    /// Pages committed by this run.
    pub pages: u64,
}

/// A run that holds its locks and has its `sync_runs` row; [`PreparedRun::execute`] runs it.
pub struct PreparedRun {
    state: AppState,
    conn: connector::Model,
    puller: Box<dyn Puller>,
    client: Arc<PullClient>,
    run: sync_run::Model,
    mode: SyncMode,
    lock: Option<SyncLock>,
    claim: Option<LocalClaim>,
}

/// Check the connector, take its pull locks (this process, then the database) and record
/// the run. `Busy` when another task or process is pulling it.
pub async fn prepare(state: &AppState, id: ConnectorId, mode: SyncMode) -> Result<PreparedRun, SyncError> {
    let conn = state.store.connector(id).await?.ok_or(SyncError::NotFound)?;
    if conn.status != "active" {
        return Err(SyncError::Disabled);
    }
    let puller = puller_for(state, &conn)?;
    let client = state
        .sync
        .client(id, puller.quota(), &conn.updated_at.to_rfc3339())
        .map_err(|e| SyncError::Config(e.to_string()))?;
    let claim = state.sync.claim(id).ok_or(SyncError::Busy)?;
    let lock = state.store.try_lock_sync(id).await?.ok_or(SyncError::Busy)?;
    let run = match state.store.start_sync_run(id, mode.as_str(), &state.sync.owner).await {
        Ok(r) => r,
        Err(e) => {
            lock.release().await;
            return Err(e.into());
        }
    };
    Ok(PreparedRun { state: state.clone(), conn, puller, client, run, mode, lock: Some(lock), claim: Some(claim) })
}

/// The puller of a stored connector (decrypting its secrets).
pub fn puller_for(state: &AppState, conn: &connector::Model) -> Result<Box<dyn Puller>, SyncError> {
    let kind = ConnectorKind::parse(&conn.kind).map_err(|_| SyncError::NotPullable(conn.kind.clone()))?;
    let current = match &conn.secrets_ciphertext {
        Some(ct) => state.cipher.open(ConnectorId(conn.id), ct).map_err(|e| SyncError::Config(e.to_string()))?,
        None => Default::default(),
    };
    junction_connectors::build_puller(kind, &conn.config, &Secrets { current, previous: None })
        .map_err(|e| SyncError::Config(e.to_string()))?
        .ok_or_else(|| SyncError::NotPullable(conn.kind.clone()))
}

/// Totals of a run so far.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    pages: i64,
    records: i64,
    errors: i64,
    /// Errors counted in `errors` but not yet written to the run row.
    unsaved_errors: i64,
}

impl PreparedRun {
    /// The `sync_runs` row as it was at start.
    pub fn run(&self) -> &sync_run::Model {
        &self.run
    }

    /// Pull every stream to its end (or the first error), then record the outcome.
    #[tracing::instrument(skip_all, fields(connector_id = %ConnectorId(self.conn.id), run_id = %self.run.id, mode = self.mode.as_str()))]
    pub async fn execute(mut self) -> sync_run::Model {
        let mut totals = Totals::default();
        let mut stream_name = String::new();
        let mut outcome: Result<(), String> = Ok(());
        for stream in self.puller.streams() {
            stream_name = stream.to_string();
            if let Err(e) = self.pull_stream(stream, &mut totals).await {
                outcome = Err(e);
                break;
            }
        }
        let (state, error) = match outcome {
            Ok(()) => (run_state::SUCCEEDED, None),
            Err(e) => (run_state::FAILED, Some(e)),
        };
        if let Some(e) = &error {
            tracing::warn!(error = %e, pages = totals.pages, records = totals.records, "pull failed");
        } else {
            tracing::info!(pages = totals.pages, records = totals.records, errors = totals.errors, "pull finished");
        }
        metrics::counter!("junction_sync_runs_total", "kind" => self.conn.kind.clone(), "state" => state).increment(1);
        // Errors were counted per page as they committed; what remains is the final one.
        let failed = i64::from(error.is_some());
        let final_errors = failed + totals.unsaved_errors;
        let row = match self.state.store.finish_sync_run(self.run.id, state, final_errors, error.clone()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "could not record the end of a pull run");
                sync_run::Model {
                    state: state.into(),
                    last_error: error,
                    finished_at: Some(Utc::now()),
                    pages: totals.pages,
                    records: totals.records,
                    errors: totals.errors + failed,
                    ..self.run.clone()
                }
            }
        };
        // Free the connector before announcing the end, so that whoever reacts to the final
        // progress event can start the next run at once.
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
        self.claim = None;
        self.publish(&stream_name, Totals { errors: totals.errors + failed, ..totals }, state);
        row
    }

    fn publish(&self, stream: &str, t: Totals, state: &str) {
        let _ = self.state.sync.progress.send(SyncProgress {
            connector_id: ConnectorId(self.conn.id),
            run_id: self.run.id,
            mode: self.mode,
            stream: stream.to_string(),
            pages: t.pages,
            records: t.records,
            errors: t.errors,
            state: state.to_string(),
            at: Utc::now(),
        });
    }

    async fn pull_stream(&self, stream: &str, totals: &mut Totals) -> Result<(), String> {
        let id = ConnectorId(self.conn.id);
        let store = &self.state.store;
        let mut cursor: CursorState = match store.sync_cursor(id, stream).await.map_err(|e| e.to_string())? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => CursorState::default(),
        };
        let resume = matches!((&cursor.run, self.mode), (Some(r), SyncMode::Backfill) if r.mode == SyncMode::Backfill)
            || (cursor.run.is_some() && self.mode == SyncMode::Incremental);
        if !resume {
            cursor.run = Some(RunCursor {
                mode: self.mode,
                page: None,
                since: match self.mode {
                    SyncMode::Incremental => cursor.watermark.clone(),
                    SyncMode::Backfill => None,
                },
                high: None,
                pages: 0,
            });
        }
        let page_size = self.puller.settings().page_size(u32::MAX).min(1000);
        // A stored page token may have expired since an interrupted run (platform cursors
        // are short-lived); if the platform refuses it, restart this stream's run from its
        // first page (same lower bound) instead of failing forever.
        let mut resumed_token = resume && cursor.run.as_ref().is_some_and(|r| r.page.is_some());
        loop {
            let Some(run) = cursor.run.clone() else { return Ok(()) };
            let pos = PullPosition { stream, page: run.page.as_ref(), since: run.since.as_ref(), page_size };
            let request = self.puller.request(&pos).map_err(|e| e.to_string())?;
            let sent = self.client.send(self.puller.as_ref(), &request).await;
            let first_after_resume = std::mem::replace(&mut resumed_token, false);
            let (response, stats) = match sent {
                Ok(r) => r,
                Err(PullError::Status { status: 400 | 404 | 410 | 422, .. }) if first_after_resume => {
                    tracing::warn!(stream, "stored page token refused; restarting the stream from its first page");
                    totals.errors += 1;
                    totals.unsaved_errors += 1;
                    if let Some(r) = cursor.run.as_mut() {
                        r.page = None;
                    }
                    continue;
                }
                Err(e) => {
                    totals.errors += retries_of(&e);
                    totals.unsaved_errors += retries_of(&e);
                    return Err(format!("{stream}: {e}"));
                }
            };
            let page = self.puller.parse(&pos, &response).map_err(|e| format!("{stream}: {e}"))?;
            let mut next = run.clone();
            let mut records = Vec::with_capacity(page.records.len());
            for r in page.records {
                if let (Some(since), Some(p)) = (&run.since, &r.position) {
                    if p <= since {
                        continue;
                    }
                }
                if let Some(p) = r.position {
                    if next.high.as_ref().is_none_or(|h| p > *h) {
                        next.high = Some(p);
                    }
                }
                records.push(r.record);
            }
            next.pages += 1;
            let mut new_cursor = cursor.clone();
            match page.next {
                Some(token) if Some(&token) == run.page.as_ref() => {
                    return Err(format!("{stream}: the platform returned the same page token twice"));
                }
                Some(token) => {
                    next.page = Some(token);
                    new_cursor.run = Some(next);
                }
                None => {
                    let high = next.high.clone();
                    if let Some(h) = high {
                        if new_cursor.watermark.as_ref().is_none_or(|w| h > *w) {
                            new_cursor.watermark = Some(h);
                        }
                    }
                    new_cursor.run = None;
                    new_cursor.completed_at = Some(Utc::now());
                }
            }
            let errors = i64::from(stats.rate_limited + stats.failures);
            let count = records.len() as i64;
            self.commit_page(stream, records, &new_cursor, count, errors + totals.unsaved_errors).await?;
            totals.unsaved_errors = 0;
            cursor = new_cursor;
            totals.pages += 1;
            totals.records += count;
            totals.errors += errors;
            metrics::counter!("junction_sync_records_total", "kind" => self.conn.kind.clone()).increment(count as u64);
            self.publish(stream, *totals, run_state::RUNNING);
        }
    }

    /// Apply a page's records, save the cursor and count the page, in one transaction.
    /// Transient conflicts (deadlock, unique race) retry the whole transaction.
    async fn commit_page(
        &self,
        stream: &str,
        records: Vec<junction_connectors::Record>,
        cursor: &CursorState,
        count: i64,
        errors: i64,
    ) -> Result<(), String> {
        let id = ConnectorId(self.conn.id);
        let store = &self.state.store;
        let cursor_json = serde_json::to_value(cursor).map_err(|e| e.to_string())?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<Vec<_>, crate::ingest::pipeline::ProcessError> = async {
                let tx = store.write().await?;
                let changes = apply_records(&self.state, &tx, &self.conn, records.clone(), Utc::now(), None).await?;
                store.save_sync_cursor(&tx, id, stream, &cursor_json).await?;
                store.count_sync_page(&tx, self.run.id, count, errors).await?;
                tx.commit().await?;
                Ok(changes)
            }
            .await;
            match result {
                Ok(changes) => {
                    for (c, k) in changes {
                        self.state.notify(c, k);
                    }
                    return Ok(());
                }
                Err(crate::ingest::pipeline::ProcessError::Store(e)) if e.is_transient() && attempt < 5 => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(format!("{stream}: {e}")),
            }
        }
    }
}

/// Failed attempts behind a final pull error (for the run's error count).
fn retries_of(e: &PullError) -> i64 {
    match e {
        PullError::Exhausted { attempts, .. } => i64::from(attempts.saturating_sub(1)),
        _ => 0,
    }
}
