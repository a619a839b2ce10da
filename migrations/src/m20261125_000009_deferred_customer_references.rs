//! Every foreign key that references `customers` is checked when the transaction commits
//! (`DEFERRABLE INITIALLY DEFERRED`) instead of at each statement. What the database
//! guarantees is the same: a transaction that leaves a row pointing at no customer does not
//! commit. The `ON DELETE` actions still run at once.
//!
//! Why: SQLite keeps a statement journal (a copy of every page a statement changes, kept
//! until the statement ends) for any statement that may fail half-way and must then undo
//! itself, and it counts every multi-row insert into a table with an *immediate* foreign key
//! as such a statement, whatever `PRAGMA defer_foreign_keys` says. At a million customers
//! that journal was 13 % of the time of the import's SQLite thread, the import's pace-setter
//! (BENCHMARKS.md, fourteenth session). With the references deferred, the import's own
//! connection writes its rows with `INSERT OR FAIL`, which needs no journal.
//!
//! SQLite cannot alter a constraint, and rebuilding seven tables (the customers among them)
//! would take minutes on a large store; the change does not alter how rows are stored, so
//! the tables' definitions are edited in place, as SQLite documents for such changes
//! (<https://sqlite.org/lang_altertable.html>, "making other kinds of table schema
//! changes"): in one transaction, with `writable_schema` and the schema version bumped so
//! that every connection reads the new definitions. PostgreSQL alters the constraints.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000009_deferred_customer_references"
    }
}

/// The tables with a foreign key to `customers` (SQLite names them in each table's text).
const TABLES: &[&str] = &["customers", "customer_tags", "identities", "source_records", "events", "orders", "consents"];

const REFERENCE: &str = "REFERENCES \"customers\" (\"id\")";
const DEFERRED: &str = " DEFERRABLE INITIALLY DEFERRED";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        change(m, true).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        change(m, false).await
    }
}

async fn change(m: &SchemaManager<'_>, defer: bool) -> Result<(), DbErr> {
    let db = m.get_connection();
    if db.get_database_backend() == DbBackend::Postgres {
        let timing = if defer { "DEFERRABLE INITIALLY DEFERRED" } else { "NOT DEFERRABLE" };
        db.execute_unprepared(&format!(
            "DO $$ DECLARE r record; BEGIN \
               FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint \
                 WHERE contype = 'f' AND confrelid = 'customers'::regclass LOOP \
                 EXECUTE format('ALTER TABLE %s ALTER CONSTRAINT %I {timing}', r.t, r.conname); \
               END LOOP; \
             END $$"
        ))
        .await?;
        return Ok(());
    }
    // One transaction, so one connection: `writable_schema` is a connection's setting.
    let txn = db.begin().await?;
    let version = pragma(&txn, "PRAGMA schema_version").await?;
    txn.execute_unprepared("PRAGMA writable_schema = ON").await?;
    let edited = edit_tables(&txn, defer).await;
    // Off again before anything else, whether the edit worked or not.
    txn.execute_unprepared("PRAGMA writable_schema = OFF").await?;
    if edited? {
        txn.execute_unprepared(&format!("PRAGMA schema_version = {}", version + 1)).await?;
    }
    txn.commit().await
}

/// Rewrite each table's definition; true if any changed.
async fn edit_tables(txn: &DatabaseTransaction, defer: bool) -> Result<bool, DbErr> {
    let mut changed = false;
    for table in TABLES {
        let row = txn
            .query_one(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                [(*table).into()],
            ))
            .await?
            .ok_or_else(|| DbErr::Migration(format!("table {table} not found")))?;
        let sql: String = row.try_get("", "sql")?;
        let new = if defer { deferred(&sql) } else { sql.replace(DEFERRED, "") };
        if !new.contains(REFERENCE) {
            return Err(DbErr::Migration(format!("table {table} has no reference to customers")));
        }
        if new != sql {
            txn.execute(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
                [new.into(), (*table).into()],
            ))
            .await?;
            changed = true;
        }
    }
    Ok(changed)
}

async fn pragma(txn: &DatabaseTransaction, sql: &str) -> Result<i64, DbErr> {
    let row = txn
        .query_one(Statement::from_string(DbBackend::Sqlite, sql))
        .await?
        .ok_or_else(|| DbErr::Migration(format!("{sql} returned nothing")))?;
    row.try_get_by_index::<i64>(0)
}

/// `sql` (a table's definition) with each reference to customers made deferred: the words
/// go at the end of the reference's clause, after its `ON DELETE` action, where the next
/// column or constraint (`,`) or the end of the definition (`)`) begins.
fn deferred(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find(REFERENCE) {
        let start = at + REFERENCE.len();
        let end = rest[start..].find([',', ')']).map_or(rest.len(), |n| start + n);
        let clause = &rest[start..end];
        out.push_str(&rest[..start]);
        let trimmed = clause.trim_end();
        out.push_str(trimmed);
        if !trimmed.contains("DEFERRABLE") {
            out.push_str(DEFERRED);
        }
        out.push_str(&clause[trimmed.len()..]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_go_after_the_action_and_only_once() {
        let identities = "CREATE TABLE \"identities\" ( \"id\" uuid_text NOT NULL PRIMARY KEY, \"customer_id\" uuid_text \
                          NOT NULL, FOREIGN KEY (\"customer_id\") REFERENCES \"customers\" (\"id\") ON DELETE CASCADE )";
        let once = deferred(identities);
        assert!(
            once.ends_with("REFERENCES \"customers\" (\"id\") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED )"),
            "{once}"
        );
        assert_eq!(deferred(&once), once, "applying it again changes nothing");
        assert_eq!(once.replace(DEFERRED, ""), identities, "down gives the original back");

        let customers =
            "CREATE TABLE \"customers\" ( \"id\" uuid_text NOT NULL PRIMARY KEY, \"merged_into\" uuid_text \
                         NULL, FOREIGN KEY (\"merged_into\") REFERENCES \"customers\" (\"id\") )";
        assert!(deferred(customers).ends_with("(\"id\") DEFERRABLE INITIALLY DEFERRED )"));
        let two = "CREATE TABLE t ( a uuid_text REFERENCES \"customers\" (\"id\"), b uuid_text REFERENCES \
                   \"customers\" (\"id\") ON DELETE SET NULL )";
        assert_eq!(deferred(two).matches(DEFERRED).count(), 2, "{}", deferred(two));
    }
}
