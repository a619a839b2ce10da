//! Pull sync state: cursors (one per connector and stream, written in the same transaction
//! as the page's records), the history of sync runs, and the per-connector pull lock.
//!
//! The lock: on PostgreSQL a session advisory lock (`pg_try_advisory_lock(class, key)`)
//! held on a connection taken out of the pool for the run. It is released when the run
//! ends, and by the server when the process dies (the connection drops), so a killed hub
//! never blocks a connector. On SQLite one hub process is assumed; the runner's in-process
//! guard is the lock.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;
use uuid::Uuid;

use super::customers::now;
use super::{Store, StoreError, StoreResult, WriteTx};
use crate::ids::ConnectorId;

/// `sync_cursors`.
pub mod sync_cursor {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sync_cursors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub connector_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub stream: String,
        pub state: Json,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `sync_runs`.
pub mod sync_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sync_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub connector_id: Uuid,
        /// `incremental` or `backfill`.
        pub mode: String,
        /// `running`, `succeeded`, `failed` or `interrupted`.
        pub state: String,
        pub pages: i64,
        pub records: i64,
        pub errors: i64,
        pub last_error: Option<String>,
        /// Which hub process ran it (host:pid).
        pub owner: String,
        pub started_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Run states.
pub mod run_state {
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    /// The process running it died (found `running` by the next run).
    pub const INTERRUPTED: &str = "interrupted";
}

/// The advisory-lock class of pull locks (two-key form, apart from identity locks).
const LOCK_CLASS: i32 = 0x4a53_594e; // "JSYN"

/// Holds a connector's pull lock until released or dropped.
pub struct SyncLock {
    conn: Option<sea_orm::sqlx::PgConnection>,
}

impl SyncLock {
    /// Release the lock (closing its dedicated connection also releases it).
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            use sea_orm::sqlx::Connection;
            let _ = conn.close().await;
        }
    }
}

fn lock_key(id: ConnectorId) -> i32 {
    let b = id.0.as_bytes();
    // The low 32 bits of a UUIDv7 are random.
    i32::from_be_bytes([b[12], b[13], b[14], b[15]])
}

fn sqlx_err(e: sea_orm::sqlx::Error) -> StoreError {
    StoreError::Db(sea_orm::DbErr::Custom(format!("pull lock: {e}")))
}

impl Store {
    /// Take the pull lock of a connector, or `None` when another process holds it.
    pub async fn try_lock_sync(&self, id: ConnectorId) -> StoreResult<Option<SyncLock>> {
        if !self.is_postgres() {
            return Ok(Some(SyncLock { conn: None }));
        }
        let pool = self.conn().get_postgres_connection_pool();
        let mut conn = pool.acquire().await.map_err(sqlx_err)?.detach();
        let got: bool = sea_orm::sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(lock_key(id))
            .fetch_one(&mut conn)
            .await
            .map_err(sqlx_err)?;
        if got {
            Ok(Some(SyncLock { conn: Some(conn) }))
        } else {
            use sea_orm::sqlx::Connection;
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The cursor state of one stream.
    pub async fn sync_cursor(&self, id: ConnectorId, stream: &str) -> StoreResult<Option<Value>> {
        Ok(sync_cursor::Entity::find_by_id((id.0, stream.to_string())).one(self.conn()).await?.map(|m| m.state))
    }

    /// Every stream's cursor of a connector.
    pub async fn sync_cursors(&self, id: ConnectorId) -> StoreResult<Vec<sync_cursor::Model>> {
        Ok(sync_cursor::Entity::find()
            .filter(sync_cursor::Column::ConnectorId.eq(id.0))
            .order_by_asc(sync_cursor::Column::Stream)
            .all(self.conn())
            .await?)
    }

    /// Save a stream's cursor inside `tx` (with the page's records).
    pub async fn save_sync_cursor(
        &self,
        tx: &WriteTx,
        id: ConnectorId,
        stream: &str,
        state: &Value,
    ) -> StoreResult<()> {
        sync_cursor::Entity::insert(sync_cursor::ActiveModel {
            connector_id: Set(id.0),
            stream: Set(stream.to_string()),
            state: Set(state.clone()),
            updated_at: Set(now()),
        })
        .on_conflict(
            OnConflict::columns([sync_cursor::Column::ConnectorId, sync_cursor::Column::Stream])
                .update_columns([sync_cursor::Column::State, sync_cursor::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&*tx.txn)
        .await?;
        Ok(())
    }

    /// Record the start of a run. Call with the pull lock held: any run of this connector
    /// still `running` was left by a process that died, and becomes `interrupted`.
    pub async fn start_sync_run(&self, id: ConnectorId, mode: &str, owner: &str) -> StoreResult<sync_run::Model> {
        let tx = self.write().await?;
        sync_run::Entity::update_many()
            .col_expr(sync_run::Column::State, Expr::value(run_state::INTERRUPTED))
            .col_expr(sync_run::Column::FinishedAt, Expr::value(now()))
            .filter(sync_run::Column::ConnectorId.eq(id.0))
            .filter(sync_run::Column::State.eq(run_state::RUNNING))
            .exec(&*tx.txn)
            .await?;
        let model = sync_run::Model {
            id: Uuid::now_v7(),
            connector_id: id.0,
            mode: mode.to_string(),
            state: run_state::RUNNING.into(),
            pages: 0,
            records: 0,
            errors: 0,
            last_error: None,
            owner: owner.to_string(),
            started_at: now(),
            finished_at: None,
        };
        sync_run::Entity::insert(sync_run::ActiveModel::from(model.clone())).exec_without_returning(&*tx.txn).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// Count a committed page inside `tx`.
    pub async fn count_sync_page(&self, tx: &WriteTx, run: Uuid, records: i64, errors: i64) -> StoreResult<()> {
        sync_run::Entity::update_many()
            .col_expr(sync_run::Column::Pages, Expr::col(sync_run::Column::Pages).add(1))
            .col_expr(sync_run::Column::Records, Expr::col(sync_run::Column::Records).add(records))
            .col_expr(sync_run::Column::Errors, Expr::col(sync_run::Column::Errors).add(errors))
            .filter(sync_run::Column::Id.eq(run))
            .exec(&*tx.txn)
            .await?;
        Ok(())
    }

    /// End a run.
    pub async fn finish_sync_run(
        &self,
        run: Uuid,
        state: &str,
        errors: i64,
        last_error: Option<String>,
    ) -> StoreResult<sync_run::Model> {
        let tx = self.write().await?;
        sync_run::Entity::update_many()
            .col_expr(sync_run::Column::State, Expr::value(state))
            .col_expr(sync_run::Column::Errors, Expr::col(sync_run::Column::Errors).add(errors))
            .col_expr(sync_run::Column::LastError, Expr::value(last_error))
            .col_expr(sync_run::Column::FinishedAt, Expr::value(now()))
            .filter(sync_run::Column::Id.eq(run))
            .exec(&*tx.txn)
            .await?;
        let row = sync_run::Entity::find_by_id(run).one(&*tx.txn).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(row)
    }

    /// A connector's runs, newest first.
    pub async fn sync_runs(&self, id: ConnectorId, limit: u64) -> StoreResult<Vec<sync_run::Model>> {
        Ok(sync_run::Entity::find()
            .filter(sync_run::Column::ConnectorId.eq(id.0))
            .order_by_desc(sync_run::Column::StartedAt)
            .order_by_desc(sync_run::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// One run.
    pub async fn sync_run(&self, run: Uuid) -> StoreResult<Option<sync_run::Model>> {
        Ok(sync_run::Entity::find_by_id(run).one(self.conn()).await?)
    }

    /// How many records a connector has brought in (source records), pulled or pushed.
    pub async fn pulled_record_count(&self, id: ConnectorId) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        Ok(super::entities::source_record::Entity::find()
            .filter(super::entities::source_record::Column::ConnectorId.eq(id.0))
            .count(self.conn())
            .await?)
    }

    /// When the connector's latest run started (for the scheduler).
    pub async fn last_sync_started(&self, id: ConnectorId) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.sync_runs(id, 1).await?.into_iter().next().map(|r| r.started_at))
    }
}
