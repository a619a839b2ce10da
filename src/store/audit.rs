//! The audit log: append-only, each row chained to the previous by SHA-256, so a changed or
//! deleted row is detected by `junction audit verify`.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder, QuerySelect, Statement};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::customers::now;
use super::entities::audit_log;
use super::{Store, StoreResult, WriteTx};

/// One thing to record. Details carry ids and counts, never personal data or secrets.
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<String>,
    pub result: &'a str,
    pub details: Value,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[allow(clippy::too_many_arguments)]
fn row_hash(
    id: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    target: Option<&str>,
    result: &str,
    details: &Value,
    prev: &str,
) -> String {
    let text = format!(
        "{id}|{}|{actor}|{action}|{}|{result}|{}|{prev}",
        at.timestamp_micros(),
        target.unwrap_or(""),
        serde_json::to_string(details).unwrap_or_default()
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Where verification found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditBreak {
    /// A row's content does not match its hash (changed).
    Altered { id: i64 },
    /// A row does not follow its predecessor (deleted or inserted rows).
    Gap { after: i64, found: i64 },
}

impl Store {
    /// Append inside the caller's transaction (the entry commits with the action).
    pub async fn audit_tx(&self, tx: &WriteTx, e: AuditEntry<'_>) -> StoreResult<()> {
        if self.is_postgres() {
            // One appender at a time keeps ids and the chain sequential.
            tx.txn.execute(Statement::from_string(self.backend(), "SELECT pg_advisory_xact_lock(7402817736)")).await?;
        }
        let last = audit_log::Entity::find().order_by_desc(audit_log::Column::Id).limit(1).one(&*tx.txn).await?;
        let (id, prev) = match last {
            Some(l) => (l.id + 1, l.hash),
            None => (1, GENESIS.to_string()),
        };
        let at = now();
        let hash = row_hash(id, at, e.actor, e.action, e.target.as_deref(), e.result, &e.details, &prev);
        audit_log::Entity::insert(audit_log::ActiveModel {
            id: Set(id),
            at: Set(at),
            actor: Set(e.actor.to_string()),
            action: Set(e.action.to_string()),
            target: Set(e.target),
            result: Set(e.result.to_string()),
            details: Set(e.details),
            prev_hash: Set(prev),
            hash: Set(hash.clone()),
        })
        .exec_without_returning(&*tx.txn)
        .await?;
        let b = self.backend();
        tx.txn
            .execute(Statement::from_sql_and_values(
                b,
                format!(
                    "INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, {p1}, {p2}) \
                     ON CONFLICT (id) DO UPDATE SET last_id = {p3}, last_hash = {p4}",
                    p1 = super::ph(b, 1),
                    p2 = super::ph(b, 2),
                    p3 = super::ph(b, 3),
                    p4 = super::ph(b, 4)
                ),
                [id.into(), hash.clone().into(), id.into(), hash.into()],
            ))
            .await?;
        Ok(())
    }

    /// Append in a transaction of its own.
    pub async fn audit(&self, e: AuditEntry<'_>) -> StoreResult<()> {
        let tx = self.write().await?;
        self.audit_tx(&tx, e).await?;
        tx.commit().await
    }

    /// Newest first.
    pub async fn audit_log(&self, limit: u64, before_id: Option<i64>) -> StoreResult<Vec<audit_log::Model>> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let mut q = audit_log::Entity::find();
        if let Some(b) = before_id {
            q = q.filter(audit_log::Column::Id.lt(b));
        }
        Ok(q.order_by_desc(audit_log::Column::Id).limit(limit).all(self.conn()).await?)
    }

    /// Walk the chain from the first row. Returns how many rows were checked, or the break.
    pub async fn verify_audit(&self) -> StoreResult<Result<u64, AuditBreak>> {
        let mut prev_hash = GENESIS.to_string();
        let mut prev_id = 0i64;
        let mut checked = 0u64;
        loop {
            use sea_orm::{ColumnTrait, QueryFilter};
            let rows = audit_log::Entity::find()
                .filter(audit_log::Column::Id.gt(prev_id))
                .order_by_asc(audit_log::Column::Id)
                .limit(1000)
                .all(self.conn())
                .await?;
            if rows.is_empty() {
                let head = self
                    .conn()
                    .query_one(Statement::from_string(
                        self.backend(),
                        "SELECT last_id, last_hash FROM audit_head WHERE id = 1",
                    ))
                    .await?;
                let (head_id, head_hash) = match head {
                    Some(h) => (
                        h.try_get::<i64>("", "last_id").unwrap_or(0),
                        h.try_get::<String>("", "last_hash").unwrap_or_default(),
                    ),
                    None => (0, GENESIS.to_string()),
                };
                if head_id != prev_id || head_hash != prev_hash {
                    return Ok(Err(AuditBreak::Gap { after: prev_id, found: head_id }));
                }
                return Ok(Ok(checked));
            }
            for r in rows {
                if r.id != prev_id + 1 || r.prev_hash != prev_hash {
                    return Ok(Err(AuditBreak::Gap { after: prev_id, found: r.id }));
                }
                let expect =
                    row_hash(r.id, r.at, &r.actor, &r.action, r.target.as_deref(), &r.result, &r.details, &r.prev_hash);
                if expect != r.hash {
                    return Ok(Err(AuditBreak::Altered { id: r.id }));
                }
                prev_id = r.id;
                prev_hash = r.hash;
                checked += 1;
            }
        }
    }
}
