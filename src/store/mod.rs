//! The store: sea-orm entities and the only code that runs queries.
//!
//! SQLite (default) and PostgreSQL share one migration set. Writes on SQLite go through
//! one in-process writer lock (SQLite has one writer anyway; the lock turns "database is
//! locked" into orderly waiting). On PostgreSQL, identity writes are serialised per
//! identity key with transaction-scoped advisory locks, and customer rows are locked
//! `FOR UPDATE` before a merge or golden-record update.

mod absent_keys;
pub mod api_keys;
pub mod audit;
pub mod bulk;
pub mod connectors;
pub mod customers;
mod deferred_indexes;
mod deferred_references;
pub mod entities;
pub mod inbox;
pub mod merges;
pub mod pagination;
pub mod privacy;
pub mod records;
mod rows;
mod shapes;
pub mod sync;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use junction_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    Statement, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use audit::{AuditBreak, AuditEntry};
pub use bulk::BulkItem;
pub use connectors::{ConnectorChange, NewConnector, SecretsChange};
pub use customers::*;
pub use deferred_indexes::worth_deferring;
pub use inbox::{status as inbox_status, NewInboxEvent};
pub use merges::{MergePreview, UnmergeOutcome};
pub use pagination::{Cursor, Page, PageRequest};

/// Errors of the store layer. Driver text stays here; the edges map these to opaque codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error")]
    Db(#[from] DbErr),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True for errors that a retry of the whole transaction may cure (deadlock,
    /// serialization failure, unique race, SQLite busy).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(e) => {
                let s = e.to_string();
                s.contains("deadlock")
                    || s.contains("could not serialize")
                    || s.contains("duplicate key")
                    || s.contains("UNIQUE constraint")
                    || s.contains("database is locked")
            }
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    writer: Option<Arc<Mutex<()>>>,
    /// Callers of [`Store::write`] waiting for the writer lock (SQLite).
    waiting_writers: Arc<AtomicUsize>,
    queries: Arc<AtomicU64>,
    survivorship: Arc<crate::identity::survivorship::SurvivorshipPolicy>,
    /// An import's own SQLite connection only: the keys it need not look up.
    absent_keys: Option<Arc<tokio::sync::Mutex<absent_keys::AbsentKeys>>>,
    /// An import's own SQLite connection only: the bulk path's inserts are `INSERT OR
    /// FAIL`, which SQLite runs without a statement journal (the references to customers
    /// being deferred, migration 9). A failed statement then leaves its earlier rows in
    /// place, which is sound because every error of an import rolls its whole transaction
    /// back (`ingest::import`).
    or_fail: bool,
}

/// A write transaction; on SQLite it also holds the writer lock until dropped.
///
/// Shared (`Arc`) so that a batch's writer can run as a task of its own on the runtime's
/// threads (see `store::bulk`); it is the only other holder, and is joined before the
/// batch returns, so commit and rollback find the transaction unshared.
pub struct WriteTx {
    pub(crate) txn: Arc<DatabaseTransaction>,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) fn new(txn: DatabaseTransaction, writer: Option<OwnedMutexGuard<()>>) -> Self {
        Self { txn: Arc::new(txn), _writer: writer }
    }

    pub async fn commit(self) -> StoreResult<()> {
        self.into_txn()?.commit().await?;
        Ok(())
    }

    /// The transaction, once nothing else holds it.
    pub(crate) fn into_txn(self) -> StoreResult<DatabaseTransaction> {
        Arc::try_unwrap(self.txn).map_err(|_| StoreError::Corrupt("a transaction is still shared when it ends".into()))
    }
}

impl Store {
    /// Connect to `url` (`sqlite://…` or `postgres://…`). The SQLite file is created if
    /// missing and runs in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let queries = Arc::new(AtomicU64::new(0));
        let mut opts = ConnectOptions::new(url.to_string());
        opts.max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .create_if_missing(true)
                    // SQLite's default page cache is 2 MB; with a million customers the
                    // identity indexes alone are far larger. 32 MB per connection, plus
                    // reads through a 256 MB memory map, keep index lookups off the syscall path.
                    .pragma("cache_size", "-32768")
                    .pragma("mmap_size", "268435456")
                    .statement_cache_capacity(64)
                    .pragma("temp_store", "memory")
                    // Checkpoints run on a background task (below), not inside the commit
                    // of whichever request happens to cross the WAL threshold.
                    .pragma("wal_autocheckpoint", "0")
            });
        let mut db = Database::connect(opts).await?;
        count_queries(&mut db, queries.clone());
        let writer = matches!(db.get_database_backend(), DatabaseBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        if let Some(w) = &writer {
            spawn_checkpointer(db.clone(), w.clone());
        }
        let store = Self {
            db,
            writer,
            waiting_writers: Arc::default(),
            queries,
            survivorship: Arc::default(),
            absent_keys: None,
            or_fail: false,
        };
        if store.is_postgres() {
            spawn_statistics_keeper(store.clone());
        }
        Ok(store)
    }

    /// A handle for a bulk load (an import) whose writes go through one connection of its
    /// own, opened with this store's options but a page cache of `cache_mib` and no memory
    /// map; SQLite files only (PostgreSQL and an in-memory SQLite database share this
    /// store's pool). The writer lock, the policy and the query count are shared; the
    /// background checkpoints stay on this store's pool.
    ///
    /// Why: memory. The pool hands each transaction to its connections in turn, so during
    /// an import every connection filled its cache and its 256 MB memory map with the
    /// import's pages (and glibc kept an arena per connection thread): 1M people peaked at
    /// 838 MB, and at 323–556 MB through one connection of its own, at the same speed.
    pub async fn bulk_loader(&self, cache_mib: u32) -> StoreResult<BulkLoader> {
        let shared = || Ok(BulkLoader { store: self.clone(), own_connection: false });
        if self.is_postgres() {
            return shared();
        }
        let options = (*self.db.get_sqlite_connection_pool().connect_options()).clone();
        let name = options.get_filename().to_string_lossy();
        if name == ":memory:" || name.starts_with("file:") {
            // An in-memory database: a connection of its own would be another database.
            return shared();
        }
        // A bulk load's multi-row statements come in ~13 shapes per table (`shapes.rs`).
        let options = options
            .pragma("cache_size", format!("-{}", u64::from(cache_mib) * 1024))
            .pragma("mmap_size", "0")
            .statement_cache_capacity(128);
        let pool = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e))))?;
        let mut db = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
        count_queries(&mut db, self.queries.clone());
        let absent_keys = Some(Arc::default());
        Ok(BulkLoader { store: Self { db, absent_keys, or_fail: true, ..self.clone() }, own_connection: true })
    }

    /// Use this survivorship policy for golden records.
    pub fn with_survivorship(mut self, policy: crate::identity::survivorship::SurvivorshipPolicy) -> Self {
        self.survivorship = Arc::new(policy);
        self
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend(), DatabaseBackend::Postgres)
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Queries run since start (every statement, reads and writes).
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Apply pending migrations, build any index a bulk load left dropped
    /// ([`Store::ensure_indexes`]) and restore any reference it left unchecked
    /// ([`Store::ensure_references`]).
    pub async fn migrate(&self) -> StoreResult<()> {
        Migrator::up(&self.db, None).await?;
        self.ensure_indexes().await?;
        self.ensure_references().await
    }

    /// Whether every known migration is applied.
    pub async fn migrations_current(&self) -> StoreResult<bool> {
        Ok(Migrator::get_pending_migrations(&self.db).await?.is_empty())
    }

    /// A cheap round trip.
    pub async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await?;
        Ok(())
    }

    /// Begin a write transaction (taking the SQLite writer lock first).
    pub async fn write(&self) -> StoreResult<WriteTx> {
        let guard = match &self.writer {
            Some(m) => {
                let _waiting = Waiting::new(&self.waiting_writers);
                Some(m.clone().lock_owned().await)
            }
            None => None,
        };
        let txn = self.db.begin().await?;
        if guard.is_some() {
            take_sqlite_write_lock(&txn).await;
        }
        Ok(WriteTx::new(txn, guard))
    }

    /// Whether another caller is waiting to begin a write transaction (SQLite, where writes
    /// take turns): a long writer, such as an import grouping batches into one transaction,
    /// commits early rather than keep a webhook waiting. The checkpointer's WAL restarts,
    /// which also take the lock, do not count.
    pub fn writers_waiting(&self) -> bool {
        self.waiting_writers.load(Ordering::Relaxed) > 0
    }

    /// Refresh the planner's statistics after a bulk load (PostgreSQL: `ANALYZE`, whose
    /// absence once turned a per-customer lookup into a scan; SQLite: `PRAGMA optimize`).
    pub async fn refresh_statistics(&self) -> StoreResult<()> {
        let sql = if self.is_postgres() { "ANALYZE" } else { "PRAGMA optimize" };
        self.db.execute_unprepared(sql).await?;
        Ok(())
    }

    /// Leave the store clean for the next process: on SQLite, copy the whole WAL back into
    /// the database file and truncate it (`wal_checkpoint(TRUNCATE)`, under the writer lock).
    /// Without it, a process that wrote a lot (an import) exits leaving up to ~100 MB of
    /// WAL, which the next process must read at open and checkpoint while it serves: the
    /// first online-resolution run after a 1M import had a p99 of 6–15 ms, the next ones
    /// 2.6–4 ms. A failure is logged, not returned: nothing is lost either way.
    ///
    /// The pragma answers `busy = 1` instead of failing when another checkpoint (the
    /// background one, which does not take the writer lock for a `PASSIVE` pass) or a
    /// reader is in its way, so it is retried for up to 2 s.
    pub async fn checkpoint_for_exit(&self) {
        let Some(writer) = &self.writer else { return };
        let _writing = writer.lock().await;
        let sql = Statement::from_string(DatabaseBackend::Sqlite, "PRAGMA wal_checkpoint(TRUNCATE)");
        for _ in 0..40 {
            match self.db.query_one(sql.clone()).await {
                Ok(Some(row)) if row.try_get_by_index::<i32>(0).unwrap_or(1) == 0 => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "final WAL checkpoint failed; the next start will replay the WAL");
                    return;
                }
            }
        }
        tracing::warn!("final WAL checkpoint kept finding the WAL busy; the next start will replay it");
    }

    /// PostgreSQL: `ANALYZE` every table whose rows changed by more than autovacuum's own
    /// threshold (50 rows + 10%) since it was last analysed, and past
    /// [`ANALYZE_DOUBLING_ROWS`] live rows by more than half of them (under inserts: once
    /// the table has doubled); returns their names. Autovacuum normally does this; on a
    /// server where it is off, the planner would keep the statistics of empty tables and
    /// scan what it should look up.
    ///
    /// Why doubling for large tables: an `ANALYZE` samples 30,000 rows whatever the size,
    /// and a growing table crosses 10 % every few seconds. During a 100k import into a
    /// fresh database, analyses took 13 % of the machine's CPU (a quarter of a core), beside
    /// the one backend that does the import's work. A lookup plan made at half the size is
    /// still the right one.
    pub async fn analyze_stale_tables(&self) -> StoreResult<Vec<String>> {
        let condition = format!(
            "n_mod_since_analyze > 50 + 0.1 * n_live_tup \
             AND (n_live_tup < {ANALYZE_DOUBLING_ROWS} OR n_mod_since_analyze > 0.5 * n_live_tup)"
        );
        self.for_each_table("ANALYZE", &condition).await
    }

    /// PostgreSQL: run `command` (`ANALYZE`, `VACUUM`) on every table of ours whose
    /// `pg_stat_user_tables` row meets `condition`; returns their names.
    async fn for_each_table(&self, command: &str, condition: &str) -> StoreResult<Vec<String>> {
        if !self.is_postgres() {
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT quote_ident(relname) AS t FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND {condition}"
        );
        let rows = self.db.query_all(Statement::from_string(DatabaseBackend::Postgres, sql)).await?;
        let mut done = Vec::new();
        for r in rows {
            let table: String = r.try_get("", "t")?;
            self.db.execute_unprepared(&format!("{command} {table}")).await?;
            done.push(table);
        }
        Ok(done)
    }

    /// PostgreSQL with autovacuum off: `VACUUM` every table with more dead rows than
    /// autovacuum's own threshold (50 rows + 20% of the live ones); returns their names.
    /// Where autovacuum runs this does nothing. Without it, a queue table such as the inbox
    /// (each event's row is updated twice) keeps every dead version in its indexes, and each
    /// lease wades through all of them.
    pub async fn vacuum_dead_tables(&self) -> StoreResult<Vec<String>> {
        self.for_each_table("VACUUM", "current_setting('autovacuum') = 'off' AND n_dead_tup > 50 + 0.2 * n_live_tup")
            .await
    }

    /// Pool gauges for /metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self.backend() {
            DatabaseBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    /// Count rows of the inbox per status, for /metrics.
    pub async fn inbox_depth(&self) -> StoreResult<i64> {
        let row = self
            .db
            .query_one(Statement::from_string(
                self.backend(),
                "SELECT COUNT(*) AS n FROM inbox WHERE status IN ('pending', 'retrying')",
            ))
            .await?;
        Ok(row.and_then(|r| r.try_get::<i64>("", "n").ok()).unwrap_or(0))
    }
}

/// Copy the SQLite WAL back into the database every 250 ms (`PASSIVE`: never waits for
/// readers or blocks the writer), so that no request pays for a checkpoint and its fsync.
///
/// SQLite only starts the WAL over when a writer begins after a complete checkpoint; under
/// a continuous stream of writes (an import, a webhook burst) that moment never comes and
/// the WAL grows without bound — 2.3 GB two minutes into a 1M-record import, every page
/// write extending the file. So once the WAL holds more than [`WAL_RESTART_FRAMES`], the
/// checkpoint is a `RESTART`: it waits for the current writer to commit, then makes the
/// next one write from the start of the file again. It holds the process's writer lock
/// while it does: a `RESTART` waits for readers with the write lock taken, so a writer that
/// had already read in its transaction would be refused with "database is locked" instead
/// of waiting.
/// The task ends when the pool is closed.
fn spawn_checkpointer(db: DatabaseConnection, writer: Arc<Mutex<()>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if db.get_sqlite_connection_pool().is_closed() {
                return;
            }
            let frames = match db
                .query_one(Statement::from_string(DatabaseBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)"))
                .await
            {
                Ok(row) => row.and_then(|r| r.try_get_by_index::<i64>(1).ok()).unwrap_or(0),
                Err(e) => {
                    tracing::debug!(error = %e, "WAL checkpoint skipped");
                    continue;
                }
            };
            if frames > WAL_RESTART_FRAMES {
                let waited = std::time::Instant::now();
                let _writing = writer.lock().await;
                let started = std::time::Instant::now();
                match db.execute_unprepared("PRAGMA wal_checkpoint(RESTART)").await {
                    Ok(_) => tracing::debug!(
                        frames,
                        waited_ms = (started - waited).as_millis() as u64,
                        took_ms = started.elapsed().as_millis() as u64,
                        "WAL restarted"
                    ),
                    Err(e) => tracing::debug!(error = %e, "WAL restart skipped"),
                }
            }
        }
    });
}

/// Every [`STATISTICS_EVERY`], [`Store::analyze_stale_tables`] and
/// [`Store::vacuum_dead_tables`] (PostgreSQL). The check is one catalog query, and a table
/// is analysed only once it changed past autovacuum's threshold, so a growing table is
/// analysed ever less often; but a fresh database fed at thousands of rows a second (an
/// import, a webhook burst) gets statistics within a second. (At 30 s, a webhook benchmark
/// on a fresh database ran without any: its identity lookups planned as hash joins over the
/// whole table, 8.4 ms each instead of 0.5 ms. At 5 s, an import into a fresh database
/// spent its first 5 s on such plans, 10–20 ms per lookup of 256 keys.) The task ends when
/// the pool is closed.
fn spawn_statistics_keeper(store: Store) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATISTICS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if store.db.get_postgres_connection_pool().is_closed() {
                return;
            }
            if let Err(e) = store.analyze_stale_tables().await {
                tracing::debug!(error = %e, "statistics refresh skipped");
            }
            if let Err(e) = store.vacuum_dead_tables().await {
                tracing::debug!(error = %e, "vacuum skipped");
            }
        }
    });
}

/// Take SQLite's write lock at the start of a write transaction. SQLite begins a
/// transaction deferred: the first read takes a snapshot, and the first write then asks for
/// the file's write lock; if another connection holds it at that moment, SQLite answers
/// "database is locked" at once, without the busy timeout (waiting could deadlock a
/// transaction that has read). The process's writer lock does not cover every holder (a
/// connection reading a WAL header caught mid-change takes the write lock to check it; a
/// `junction import` or `serve` in another process writes on its own), so an admin
/// mutation that read, then wrote, failed now and then under load. A write that changes
/// nothing, as the transaction's first statement, takes the lock through the busy timeout
/// instead. Before migrations (no `seaql_migrations` yet) it fails, and the transaction
/// goes on as before. Prepared once per connection (it runs with every write).
async fn take_sqlite_write_lock(txn: &DatabaseTransaction) {
    let no_op =
        Statement::from_string(DatabaseBackend::Sqlite, "UPDATE seaql_migrations SET version = version WHERE 0");
    if let Err(e) = txn.execute(no_op).await {
        tracing::debug!(error = %e, "SQLite write lock not taken up front");
    }
}

/// Counts a caller in [`Store::writers_waiting`] until dropped (also when its wait is
/// cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live rows past which a table is analysed only once half its rows changed
/// ([`Store::analyze_stale_tables`]).
const ANALYZE_DOUBLING_ROWS: i64 = 10_000;

/// How often the statistics keeper looks for stale tables (PostgreSQL).
const STATISTICS_EVERY: Duration = Duration::from_secs(1);

/// How long a request waits for a pooled connection (the store's pool and a bulk loader's).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL frames (one page each, 4 KiB) past which the checkpointer restarts the WAL: ~400 MB.
/// A restart waits for the writer, then holds it while it copies what the last commit
/// wrote; an import's group of chunks writes ~60,000 frames at a million customers (its
/// random index pages). At 16,384 frames every group paid that wait (~0.7 s a group, 12.6 s
/// of a 1M import); at 100,000 about every other one does (5.5 s), while the passive
/// checkpoints copy the previous group as the next one is written. The price is a WAL file
/// of up to ~750 MB during a long import (the exit checkpoint truncates it).
const WAL_RESTART_FRAMES: i64 = 100_000;

/// Count every statement `db` runs into `queries` and the query metrics.
fn count_queries(db: &mut DatabaseConnection, queries: Arc<AtomicU64>) {
    db.set_metric_callback(move |info| {
        queries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("junction_db_queries_total", "failed" => if info.failed { "true" } else { "false" })
            .increment(1);
        metrics::histogram!("junction_db_query_seconds").record(info.elapsed.as_secs_f64());
    });
}

/// The store handle of a bulk load ([`Store::bulk_loader`]).
pub struct BulkLoader {
    store: Store,
    own_connection: bool,
}

impl BulkLoader {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Close the loader's own connection, if it has one.
    pub async fn close(self) {
        if self.own_connection {
            let _ = self.store.db.close().await;
        }
    }
}

/// Placeholder `n` (1-based) for hand-written SQL on this backend.
pub(crate) fn ph(backend: DatabaseBackend, n: usize) -> String {
    let mut sql = String::new();
    push_ph(&mut sql, backend, n);
    sql
}

/// [`ph`], appended to `sql` (the bulk path writes thousands per statement).
fn push_ph(sql: &mut String, backend: DatabaseBackend, n: usize) {
    match backend {
        DatabaseBackend::Postgres => {
            use std::fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(sql, "${n}");
        }
        _ => sql.push('?'),
    }
}

/// One tuple of a multi-row `VALUES` list, appended to `sql` after the `after` parameters
/// already bound: placeholders for the next `width`, the columns (0-based) where `json`
/// says so as JSON bound as text ([`push_json_text`]).
pub(crate) fn push_tuple(
    sql: &mut String,
    backend: DatabaseBackend,
    after: usize,
    width: usize,
    json: impl Fn(usize) -> bool,
) {
    sql.push_str(if after == 0 { "(" } else { ", (" });
    for c in 0..width {
        if c > 0 {
            sql.push_str(", ");
        }
        if json(c) {
            push_json_text(sql, backend, after + c + 1);
        } else {
            push_ph(sql, backend, after + c + 1);
        }
    }
    sql.push(')');
}

/// The placeholder of parameter `n` for a JSON column bound as text, appended to `sql`:
/// PostgreSQL parses it into `jsonb`, SQLite stores JSON as text.
fn push_json_text(sql: &mut String, backend: DatabaseBackend, n: usize) {
    match backend {
        DatabaseBackend::Postgres => {
            sql.push_str("CAST(");
            push_ph(sql, backend, n);
            sql.push_str(" AS jsonb)");
        }
        _ => push_ph(sql, backend, n),
    }
}
