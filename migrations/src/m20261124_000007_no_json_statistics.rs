//! PostgreSQL: no planner statistics for JSON documents. `ANALYZE` sorts a sample of every
//! column, and sorting `jsonb` documents (a source record's payload, a customer's traits)
//! costs most of the time of analysing their tables: `source_records` took 589 ms with its
//! payload and 144 ms without, on 180k rows. The planner has no use for those statistics
//! (a `jsonb` column is compared as a whole nowhere; filters on a trait go through
//! expressions, which have none anyway), and the statistics keeper re-analyses growing
//! tables every few seconds during an import. SQLite keeps no such statistics: nothing to do.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000007_no_json_statistics"
    }
}

/// Every `jsonb` column of the schema so far, as (table, column).
const JSON_COLUMNS: &[(&str, &str)] = &[
    ("audit_log", "details"),
    ("connectors", "config"),
    ("customers", "addresses"),
    ("customers", "traits"),
    ("erasure_receipts", "counts"),
    ("events", "properties"),
    ("inbox", "query"),
    ("inbox", "headers"),
    ("merge_candidates", "evidence"),
    ("merges", "evidence"),
    ("merges", "moved"),
    ("orders", "lines"),
    ("source_records", "payload"),
    ("sync_cursors", "state"),
];

async fn set_statistics(m: &SchemaManager<'_>, target: i32) -> Result<(), DbErr> {
    let db = m.get_connection();
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for (table, column) in JSON_COLUMNS {
        db.execute_unprepared(&format!("ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS {target}")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        set_statistics(m, 0).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        set_statistics(m, -1).await
    }
}
