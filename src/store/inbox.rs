//! The durable inbox: verified webhook deliveries, deduplicated on (connector, event id),
//! leased by workers (`FOR UPDATE SKIP LOCKED` on PostgreSQL), retried with backoff, and
//! dead-lettered after the configured number of attempts.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use uuid::Uuid;

use super::customers::now;
use super::entities::inbox;
use super::{ph, Store, StoreError, StoreResult, WriteTx};
use crate::ids::{ConnectorId, InboxId};

/// A verified delivery to keep.
pub struct NewInboxEvent {
    pub connector_id: ConnectorId,
    pub event_id: String,
    pub event_type: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Inbox row states.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const PROCESSING: &str = "processing";
    pub const RETRYING: &str = "retrying";
    pub const PROCESSED: &str = "processed";
    pub const DEAD: &str = "dead";
}

/// The row is still leased by the worker holding `lease` (the lease expiry is its token).
fn still_leased(lease: Option<DateTime<Utc>>) -> sea_orm::Condition {
    let token = match lease {
        Some(l) => inbox::Column::LeasedUntil.eq(l),
        None => inbox::Column::LeasedUntil.is_null(),
    };
    sea_orm::Condition::all().add(inbox::Column::Status.eq(status::PROCESSING)).add(token)
}

impl Store {
    /// Store a delivery; returns false when it was a duplicate (nothing changed).
    pub async fn insert_inbox(&self, e: NewInboxEvent) -> StoreResult<bool> {
        let at = now();
        let model = inbox::ActiveModel {
            id: Set(Uuid::now_v7()),
            connector_id: Set(e.connector_id.0),
            event_id: Set(e.event_id),
            event_type: Set(e.event_type),
            headers: Set(serde_json::to_value(&e.headers).unwrap_or_default()),
            query: Set(serde_json::to_value(&e.query).unwrap_or_default()),
            body: Set(e.body),
            status: Set(status::PENDING.into()),
            attempts: Set(0),
            next_attempt_at: Set(at),
            leased_until: Set(None),
            last_error: Set(None),
            received_at: Set(at),
            processed_at: Set(None),
        };
        // No writer lock needed: a single INSERT is atomic on both backends.
        let res = inbox::Entity::insert(model)
            .on_conflict(
                OnConflict::columns([inbox::Column::ConnectorId, inbox::Column::EventId]).do_nothing().to_owned(),
            )
            .do_nothing()
            .exec_without_returning(self.conn())
            .await?;
        Ok(matches!(res, sea_orm::TryInsertResult::Inserted(n) if n > 0))
    }

    /// Lease up to `n` due rows (pending, retrying, or with an expired lease).
    pub async fn lease_inbox(&self, n: u64, lease: Duration) -> StoreResult<Vec<inbox::Model>> {
        let at = now();
        let until = at + lease;
        let b = self.backend();
        let lock = if self.is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE inbox SET status = 'processing', leased_until = {p1}, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM inbox WHERE \
               ((status IN ('pending', 'retrying') AND next_attempt_at <= {p2}) OR (status = 'processing' AND leased_until < {p3})) \
               ORDER BY next_attempt_at LIMIT {n}{lock}) \
             RETURNING *",
            p1 = ph(b, 1),
            p2 = ph(b, 2),
            p3 = ph(b, 3),
        );
        let stmt = Statement::from_sql_and_values(b, sql, [until.into(), at.into(), at.into()]);
        let tx = self.write().await?;
        let rows = inbox::Model::find_by_statement(stmt).all(&tx.txn).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Mark a leased row processed inside the transaction that applied its effects. The lease
    /// (its expiry time) is the token: if the lease ran out and another worker took the row,
    /// this fails and the caller's transaction must roll back, so effects apply exactly once.
    pub async fn complete_inbox(&self, tx: &WriteTx, id: InboxId, lease: Option<DateTime<Utc>>) -> StoreResult<()> {
        let res = inbox::Entity::update_many()
            .col_expr(inbox::Column::Status, Expr::value(status::PROCESSED))
            .col_expr(inbox::Column::ProcessedAt, Expr::value(now()))
            .col_expr(inbox::Column::LeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(inbox::Column::LastError, Expr::value(Option::<String>::None))
            .filter(inbox::Column::Id.eq(id.0))
            .filter(still_leased(lease))
            .exec(&tx.txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(StoreError::Conflict("inbox lease lost to another worker".into()));
        }
        Ok(())
    }

    /// Record a failed attempt: retry after `retry_in`, or dead-letter when out of attempts.
    /// Only while the lease is still ours: a worker that lost its lease changes nothing.
    pub async fn fail_inbox(
        &self,
        id: InboxId,
        lease: Option<DateTime<Utc>>,
        error: &str,
        dead: bool,
        retry_in: Duration,
    ) -> StoreResult<()> {
        let tx = self.write().await?;
        inbox::Entity::update_many()
            .col_expr(inbox::Column::Status, Expr::value(if dead { status::DEAD } else { status::RETRYING }))
            .col_expr(inbox::Column::NextAttemptAt, Expr::value(now() + retry_in))
            .col_expr(inbox::Column::LeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(inbox::Column::LastError, Expr::value(error.chars().take(500).collect::<String>()))
            .filter(inbox::Column::Id.eq(id.0))
            .filter(still_leased(lease))
            .exec(&tx.txn)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Put rows back in the queue with fresh attempts. `ids` or all dead rows of a connector.
    pub async fn replay_inbox(&self, ids: Option<&[Uuid]>, connector: Option<ConnectorId>) -> StoreResult<u64> {
        let mut q = inbox::Entity::update_many()
            .col_expr(inbox::Column::Status, Expr::value(status::PENDING))
            .col_expr(inbox::Column::Attempts, Expr::value(0))
            .col_expr(inbox::Column::NextAttemptAt, Expr::value(now()))
            .col_expr(inbox::Column::LeasedUntil, Expr::value(Option::<DateTime<Utc>>::None));
        match (ids, connector) {
            (Some(ids), _) => q = q.filter(inbox::Column::Id.is_in(ids.iter().copied())),
            (None, Some(c)) => {
                q = q.filter(inbox::Column::ConnectorId.eq(c.0)).filter(inbox::Column::Status.eq(status::DEAD))
            }
            (None, None) => return Err(StoreError::Conflict("nothing to replay".into())),
        }
        let tx = self.write().await?;
        let res = q.exec(&tx.txn).await?;
        tx.commit().await?;
        Ok(res.rows_affected)
    }

    pub async fn inbox_event(&self, id: InboxId) -> StoreResult<Option<inbox::Model>> {
        Ok(inbox::Entity::find_by_id(id.0).one(self.conn()).await?)
    }

    /// Inbox rows, newest first, optionally by connector and status.
    pub async fn inbox_events(
        &self,
        connector: Option<ConnectorId>,
        status: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<inbox::Model>> {
        let mut q = inbox::Entity::find();
        if let Some(c) = connector {
            q = q.filter(inbox::Column::ConnectorId.eq(c.0));
        }
        if let Some(s) = status {
            q = q.filter(inbox::Column::Status.eq(s));
        }
        Ok(q.order_by_desc(inbox::Column::ReceivedAt)
            .order_by_desc(inbox::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// Rows per status for one connector.
    pub async fn inbox_counts(&self, connector: ConnectorId) -> StoreResult<Vec<(String, i64)>> {
        #[derive(FromQueryResult)]
        struct Row {
            status: String,
            n: i64,
        }
        let b = self.backend();
        let sql = format!(
            "SELECT status, COUNT(*) AS n FROM inbox WHERE connector_id = {} GROUP BY status ORDER BY status",
            ph(b, 1)
        );
        let rows = Row::find_by_statement(Statement::from_sql_and_values(b, sql, [connector.0.into()]))
            .all(self.conn())
            .await?;
        Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
    }

    /// Drop stored payloads of a connector (privacy: shop erasure).
    pub async fn purge_inbox(&self, tx: &WriteTx, connector: ConnectorId) -> StoreResult<()> {
        tx.txn
            .execute(Statement::from_sql_and_values(
                self.backend(),
                format!(
                    "UPDATE inbox SET body = {}, headers = {}, query = {} WHERE connector_id = {}",
                    ph(self.backend(), 1),
                    ph(self.backend(), 2),
                    ph(self.backend(), 3),
                    ph(self.backend(), 4)
                ),
                [
                    Vec::<u8>::new().into(),
                    serde_json::json!([]).into(),
                    serde_json::json!([]).into(),
                    connector.0.into(),
                ],
            ))
            .await?;
        Ok(())
    }
}
