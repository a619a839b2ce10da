//! Secondary indexes that a bulk load builds once, at its end, instead of entry by entry.
//!
//! `ix_customers_created` orders customers by `created_at`, which is the source's time, not
//! the time of the write; so every new customer's entry lands at a random place in it.
//! At a million customers that index was about three quarters of the cost of writing a
//! customer row (twelfth session in BENCHMARKS.md), and its pages, dirtied all over by
//! every group, a quarter of what an import wrote to SQLite's WAL. Sorting the finished
//! table into a new index costs a fraction of that (1.3M customers: 2.2 s on SQLite,
//! 0.7 s on PostgreSQL). No write path reads the index (keys, merges and golden records
//! go by id and by identity key), so dropping it during a load changes no result: only
//! listing customers by creation time is slower until it is back.
//!
//! The index comes back at the end of the load, whether it succeeded or not, and, should
//! the process die before that, with the next `migrate` (every start of the hub or of a
//! command that opens the store): [`Store::ensure_indexes`].

use sea_orm::ConnectionTrait;

use super::{Store, StoreResult};

/// A secondary index that a bulk load may defer, with the statement that builds it (the
/// definition of the migration that first created it).
struct Deferrable {
    name: &'static str,
    create: &'static str,
}

const DEFERRABLE: &[Deferrable] = &[Deferrable {
    name: "ix_customers_created",
    create: "CREATE INDEX IF NOT EXISTS \"ix_customers_created\" ON \"customers\" (\"created_at\", \"id\")",
}];

/// Records below which a load never defers an index: dropping and building it again is
/// not worth its DDL for a small file.
const MIN_RECORDS: u64 = 50_000;

/// Whether a load of about `records` records into a store of `customers` customer rows
/// should defer the indexes. Building an index again sorts every row, old and new
/// (~1.7 µs a row on SQLite), where keeping it costs a random insert per new customer
/// (~7 µs at a million rows, less while the index still fits the cache); a record makes
/// ~0.7 customers on average. So it pays once the load brings at least half as many
/// records as the store holds customers.
pub fn worth_deferring(records: u64, customers: u64) -> bool {
    records >= MIN_RECORDS && records.saturating_mul(2) >= customers
}

impl Store {
    /// Drop the deferrable indexes for a bulk load. Returns their names, for
    /// [`Store::ensure_indexes`] to build again when the load ends.
    pub async fn defer_indexes(&self) -> StoreResult<Vec<&'static str>> {
        let tx = self.write().await?;
        for index in DEFERRABLE {
            tx.txn.execute_unprepared(&format!("DROP INDEX IF EXISTS \"{}\"", index.name)).await?;
        }
        tx.commit().await?;
        Ok(DEFERRABLE.iter().map(|i| i.name).collect())
    }

    /// Build every deferrable index that is missing (nothing to do, and cheap, when all
    /// exist). Run by [`Store::migrate`], so an index left dropped by a load that died is
    /// back at the next start.
    pub async fn ensure_indexes(&self) -> StoreResult<()> {
        for index in DEFERRABLE {
            // A read first: a start beside a running import must not wait for its writer
            // lock when there is nothing to build.
            if self.has_index(index.name).await? {
                continue;
            }
            let tx = self.write().await?;
            tx.txn.execute_unprepared(index.create).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn has_index(&self, name: &str) -> StoreResult<bool> {
        let sql = if self.is_postgres() {
            "SELECT COUNT(*) AS n FROM pg_indexes WHERE indexname = $1 AND schemaname = current_schema()"
        } else {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name = ?"
        };
        let row =
            self.db.query_one(sea_orm::Statement::from_sql_and_values(self.backend(), sql, [name.into()])).await?;
        Ok(row.and_then(|r| r.try_get::<i64>("", "n").ok()).unwrap_or(0) > 0)
    }

    /// Customer rows in the store, merged ones included (what an index over customers holds).
    pub async fn customer_rows(&self) -> StoreResult<u64> {
        let row = self
            .db
            .query_one(sea_orm::Statement::from_string(self.backend(), "SELECT COUNT(*) AS n FROM customers"))
            .await?;
        Ok(row.and_then(|r| r.try_get::<i64>("", "n").ok()).unwrap_or(0).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferring_pays_for_a_large_load_into_a_smaller_store() {
        assert!(worth_deferring(1_800_000, 0));
        assert!(worth_deferring(1_800_000, 1_300_000));
        assert!(worth_deferring(60_000, 100_000));
        // 100k people (180k records) into a store of a million: keep the index.
        assert!(!worth_deferring(180_000, 1_300_000));
        // A small file never defers, even into an empty store.
        assert!(!worth_deferring(MIN_RECORDS - 1, 0));
    }
}
