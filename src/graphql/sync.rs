//! Pull sync in GraphQL: `syncConnector`, `Connector.syncRuns`, `Connector.cursor`, and
//! the `syncProgress` subscription.

use async_graphql::{Context, Enum, Json, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::state;
use crate::ids::ConnectorId;
use crate::store::sync::{sync_cursor, sync_run};
use crate::sync::{prepare, SyncError, SyncMode as Mode};

/// How a pull reads the platform.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SyncMode {
    /// What changed since the last completed pull (resumes an interrupted backfill first).
    Incremental,
    /// Everything from the first page (resumes an interrupted backfill).
    Backfill,
}

/// A run's state.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SyncRunState {
    Running,
    Succeeded,
    Failed,
    /// The process running it stopped (killed, crashed); the next run resumed from the cursor.
    Interrupted,
}

fn run_state(s: &str) -> SyncRunState {
    match s {
        "succeeded" => SyncRunState::Succeeded,
        "failed" => SyncRunState::Failed,
        "interrupted" => SyncRunState::Interrupted,
        _ => SyncRunState::Running,
    }
}

fn mode_of(s: &str) -> SyncMode {
    if s == "backfill" {
        SyncMode::Backfill
    } else {
        SyncMode::Incremental
    }
}

/// One pull run of a connector.
pub struct SyncRun(pub sync_run::Model);

#[Object]
impl SyncRun {
    async fn id(&self) -> ID {
        ID(format!("syn_{}", self.0.id.simple()))
    }
    async fn connector_id(&self) -> ID {
        ID(ConnectorId(self.0.connector_id).to_string())
    }
    async fn mode(&self) -> SyncMode {
        mode_of(&self.0.mode)
    }
    async fn state(&self) -> SyncRunState {
        run_state(&self.0.state)
    }
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// Pages committed (each with its records and the cursor, atomically).
    async fn pages(&self) -> i64 {
        self.0.pages
    }
    /// Records applied.
    async fn records(&self) -> i64 {
        self.0.records
    }
    /// Failed attempts: 429s, 5xx, timeouts (retried), plus the error that ended the run.
    async fn errors(&self) -> i64 {
        self.0.errors
    }
    /// Why the run failed (never credentials or personal data).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// The hub process that ran it (`host:pid`).
    async fn owner(&self) -> &str {
        &self.0.owner
    }
}

/// Where a connector's pull of one stream stands.
pub struct SyncCursor(pub sync_cursor::Model);

#[Object]
impl SyncCursor {
    /// `customers`, `orders`, …
    async fn stream(&self) -> &str {
        &self.0.stream
    }
    /// The `updated_at` of the newest record of a completed pull.
    async fn watermark_updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.state.pointer("/watermark/updated_at").and_then(Value::as_str).and_then(|s| s.parse().ok())
    }
    /// The id breaking ties at `watermarkUpdatedAt`.
    async fn watermark_id(&self) -> Option<&str> {
        self.0.state.pointer("/watermark/id").and_then(Value::as_str)
    }
    /// A pull of this stream is under way or was interrupted; the next run resumes it.
    async fn in_progress(&self) -> bool {
        self.0.state.get("run").is_some_and(|r| !r.is_null())
    }
    /// Mode of the pull in progress.
    async fn in_progress_mode(&self) -> Option<SyncMode> {
        self.0.state.pointer("/run/mode").and_then(Value::as_str).map(mode_of)
    }
    /// When a pull of this stream last completed.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.state.get("completed_at").and_then(Value::as_str).and_then(|s| s.parse().ok())
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The whole stored state (page token, watermark, progress).
    async fn state(&self) -> Json<Value> {
        Json(self.0.state.clone())
    }
}

/// `Connector.syncRuns`.
pub async fn sync_runs(ctx: &Context<'_>, id: ConnectorId, first: i32) -> ApiResult<Vec<SyncRun>> {
    let max = state(ctx).config.graphql.max_page_size as i32;
    if !(0..=max).contains(&first) {
        return Err(ApiError::validation("first", format!("between 0 and {max}")).into());
    }
    let rows = state(ctx).store.sync_runs(id, first as u64).await.map_err(ApiError::from)?;
    Ok(rows.into_iter().map(SyncRun).collect())
}

/// `Connector.cursor`.
pub async fn cursors(ctx: &Context<'_>, id: ConnectorId) -> ApiResult<Vec<SyncCursor>> {
    let rows = state(ctx).store.sync_cursors(id).await.map_err(ApiError::from)?;
    Ok(rows.into_iter().map(SyncCursor).collect())
}

#[derive(Default)]
pub struct SyncMutation;

#[Object]
impl SyncMutation {
    /// Start a pull of a connector now; it runs in the background (watch `syncProgress` or
    /// `connector.syncRuns`). CONFLICT when a pull of it is already running (in any hub
    /// process), VALIDATION when it cannot pull (kind, `config.pull`, missing credential).
    async fn sync_connector(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default_with = "SyncMode::Incremental")] mode: SyncMode,
    ) -> ApiResult<SyncRun> {
        let cid = ConnectorId::parse(id.as_str()).map_err(|_| ApiError::validation("id", "not a connector id"))?;
        let mode = match mode {
            SyncMode::Incremental => Mode::Incremental,
            SyncMode::Backfill => Mode::Backfill,
        };
        let run = prepare(state(ctx), cid, mode).await.map_err(|e| match e {
            SyncError::NotFound => ApiError::NotFound("connector"),
            SyncError::Busy => ApiError::Conflict("a pull of this connector is already running".into()),
            SyncError::Disabled => ApiError::validation("id", "the connector is disabled"),
            e @ (SyncError::NotPullable(_) | SyncError::Config(_)) => ApiError::validation("id", e.to_string()),
            SyncError::Store(s) => ApiError::from(s),
        })?;
        let row = run.run().clone();
        tokio::spawn(run.execute());
        Ok(SyncRun(row))
    }
}

/// Progress of a pull run.
#[derive(SimpleObject, Clone)]
pub struct SyncProgressEvent {
    pub connector_id: ID,
    pub run_id: ID,
    pub mode: SyncMode,
    pub stream: String,
    pub pages: i64,
    pub records: i64,
    pub errors: i64,
    pub state: SyncRunState,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
pub struct SyncSubscription;

#[Subscription]
impl SyncSubscription {
    /// Progress of a connector's pulls in this hub process: one event per committed page,
    /// and one when a run ends.
    async fn sync_progress(
        &self,
        ctx: &Context<'_>,
        connector_id: ID,
    ) -> async_graphql::Result<BoxStream<'static, SyncProgressEvent>> {
        let cid = ConnectorId::parse(connector_id.as_str())
            .map_err(|_| ApiError::validation("connectorId", "not a connector id"))?;
        let rx = state(ctx).sync.progress.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(v) => return Some((v, rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(stream
            .filter_map(move |p| async move {
                (p.connector_id == cid).then(|| SyncProgressEvent {
                    connector_id: ID(p.connector_id.to_string()),
                    run_id: ID(format!("syn_{}", p.run_id.simple())),
                    mode: match p.mode {
                        Mode::Incremental => SyncMode::Incremental,
                        Mode::Backfill => SyncMode::Backfill,
                    },
                    stream: p.stream,
                    pages: p.pages,
                    records: p.records,
                    errors: p.errors,
                    state: run_state(&p.state),
                    at: p.at,
                })
            })
            .boxed())
    }
}
