//! Identities are found and kept unique by a 16-byte digest of their key instead of the key's
//! text. `key_hash` is [`identity_key_hash`] of (kind, namespace, value), stored as a UUID
//! (`uuid` on PostgreSQL, a 16-byte blob on SQLite). The three indexes over the text key
//! (the active rows' unique key, the set-aside rows' key, and the per-customer unique key)
//! move to the digest: each index entry is 16 bytes instead of the key's text, so the
//! random inserts an import makes into them touch fewer, denser pages. In a floor harness
//! writing a 1M import's 3.0M identity rows, the same indexes over a fixed-width hash took
//! 18.4 s against 27.7 s over the text (BENCHMARKS.md, twelfth session).
//!
//! 128 bits of SHA-256 make two different keys sharing a digest as unlikely as two random
//! UUIDs colliding, which the ids already rely on.
//!
//! Existing rows are back-filled here, page by page, before the new indexes are built.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value};

use crate::identity_key_hash;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000008_identity_key_hash"
    }
}

/// Rows read per back-fill page.
const PAGE: u64 = 5_000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let postgres = db.get_database_backend() == DbBackend::Postgres;
        if postgres {
            db.execute_unprepared("ALTER TABLE identities ADD COLUMN key_hash uuid").await?;
        } else {
            // SQLite adds a NOT NULL column only with a default; every insert sets its own.
            db.execute_unprepared(
                "ALTER TABLE identities ADD COLUMN key_hash uuid_text NOT NULL \
                 DEFAULT x'00000000000000000000000000000000'",
            )
            .await?;
        }
        backfill(db, postgres).await?;
        if postgres {
            db.execute_unprepared("ALTER TABLE identities ALTER COLUMN key_hash SET NOT NULL").await?;
        }
        for drop in ["ux_identities_active_key", "ix_identities_set_aside_key", "ux_identities_customer_key"] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {drop}")).await?;
        }
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_identities_active_key_hash ON identities (key_hash) WHERE status = 'active'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_identities_set_aside_key_hash ON identities (key_hash) WHERE status <> 'active'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_identities_customer_key_hash ON identities (customer_id, key_hash)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        for drop in
            ["ux_identities_active_key_hash", "ix_identities_set_aside_key_hash", "ux_identities_customer_key_hash"]
        {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {drop}")).await?;
        }
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_identities_active_key ON identities (kind, namespace, value) \
             WHERE status = 'active'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_identities_set_aside_key ON identities (kind, namespace, value) \
             WHERE status <> 'active'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_identities_customer_key ON identities (customer_id, kind, namespace, value)",
        )
        .await?;
        db.execute_unprepared("ALTER TABLE identities DROP COLUMN key_hash").await?;
        Ok(())
    }
}

/// Rows per back-fill `UPDATE` (two parameters each).
const UPDATE_ROWS: usize = 500;

/// Compute `key_hash` for every existing row, in pages ordered by the row's own key (the
/// rowid on SQLite, the id on PostgreSQL), so memory stays flat on a large store. Each page
/// is one transaction (a savepoint when the migrator already runs in one) of multi-row
/// `UPDATE … FROM` statements: a row at a time, autocommitted, took 30 s for 300,000 rows
/// on SQLite.
async fn backfill(db: &SchemaManagerConnection<'_>, postgres: bool) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let select = if postgres {
        "SELECT id::text AS k, kind, namespace, value FROM identities WHERE id > $1::uuid ORDER BY id LIMIT $2"
    } else {
        "SELECT CAST(rowid AS TEXT) AS k, kind, namespace, value FROM identities \
         WHERE rowid > CAST(? AS INTEGER) ORDER BY rowid LIMIT ?"
    };
    let mut after = if postgres { uuid::Uuid::nil().to_string() } else { "0".to_string() };
    loop {
        let rows = db
            .query_all(Statement::from_sql_and_values(backend, select, [after.clone().into(), (PAGE as i64).into()]))
            .await?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.try_get::<String>("", "k")?;
        let txn = db.begin().await?;
        for chunk in rows.chunks(UPDATE_ROWS) {
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
            for row in chunk {
                let hash = identity_key_hash(
                    &row.try_get::<String>("", "kind")?,
                    &row.try_get::<String>("", "namespace")?,
                    &row.try_get::<String>("", "value")?,
                );
                values.push(row.try_get::<String>("", "k")?.into());
                values.push(if postgres { hash.to_string().into() } else { hash.as_bytes().to_vec().into() });
            }
            let tuples: Vec<String> = (0..chunk.len())
                .map(|i| if postgres { format!("(${}, ${})", 2 * i + 1, 2 * i + 2) } else { "(?, ?)".to_string() })
                .collect();
            let sql = if postgres {
                format!(
                    "WITH v (k, h) AS (VALUES {}) UPDATE identities SET key_hash = v.h::uuid FROM v \
                     WHERE identities.id = v.k::uuid",
                    tuples.join(", ")
                )
            } else {
                format!(
                    "WITH v (k, h) AS (VALUES {}) UPDATE identities SET key_hash = v.h FROM v \
                     WHERE identities.rowid = CAST(v.k AS INTEGER)",
                    tuples.join(", ")
                )
            };
            txn.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
        }
        txn.commit().await?;
    }
}
