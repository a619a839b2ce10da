//! Streaming import (memory does not grow with the file) and export.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use serde_json::json;

use super::thread_priority::{lower_this_thread, READER_NICE};
use super::FlatRecord;
use crate::identity::{KeyExtractor, Observation};
use crate::ids::{CustomerId, IdentityId};
use crate::store::{worth_deferring, BulkItem, IngestOutcome, Store, StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    JsonLines,
    Csv,
}

impl ImportFormat {
    /// From a file name: `.csv` is CSV, anything else JSON Lines.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Self::Csv,
            _ => Self::JsonLines,
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct ImportSummary {
    pub read: u64,
    pub created: u64,
    pub attached: u64,
    pub merged: u64,
    pub rejected: u64,
    /// Rejected records by reason.
    pub reasons: BTreeMap<String, u64>,
    /// Identifiers set aside (junk, invalid, ambiguous) by reason, in accepted records.
    pub identifiers_set_aside: BTreeMap<String, u64>,
    /// Indexes dropped for the load and built again at its end ([`Store::defer_indexes`]),
    /// and the seconds that build took (part of `seconds`).
    pub rebuilt_indexes: Vec<String>,
    pub index_seconds: f64,
    /// Tables whose reference to customers was dropped for the load and checked again at
    /// its end ([`Store::defer_references`], PostgreSQL), and the seconds that took.
    pub checked_references: Vec<String>,
    pub reference_seconds: f64,
    pub seconds: f64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} records: {} created, {} attached, {} merges, {} rejected",
            self.read, self.created, self.attached, self.merged, self.rejected
        )?;
        if !self.reasons.is_empty() {
            let r: Vec<String> = self.reasons.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            write!(f, " ({})", r.join("; "))?;
        }
        let set_aside: u64 = self.identifiers_set_aside.values().sum();
        if set_aside > 0 {
            write!(f, "; {set_aside} identifiers set aside")?;
        }
        write!(f, " in {:.1} s ({:.0} records/s)", self.seconds, self.read as f64 / self.seconds.max(1e-9))?;
        if !self.rebuilt_indexes.is_empty() {
            write!(
                f,
                "; index {} built after the load in {:.1} s",
                self.rebuilt_indexes.join(", "),
                self.index_seconds
            )?;
        }
        if !self.checked_references.is_empty() {
            write!(
                f,
                "; references of {} checked after the load in {:.1} s",
                self.checked_references.join(", "),
                self.reference_seconds
            )?;
        }
        Ok(())
    }
}

/// Page cache of the import's own connection ([`Store::bulk_loader`]). Once the store holds
/// a million customers, the identity and customer indexes no longer fit a small cache and
/// every miss is a `pread`: with 256 MB, 100k people into a 1M store took 20.2–20.8 s
/// against 21.8–22.8 s with 64 MB (system time −2.5 s), and the whole 1M import 139.7 s
/// against 146.0 s, for a peak RSS of 550 MB instead of 333 MB. What the own connection
/// saves is memory: the pool's connections would each fill a cache and a memory map of
/// their own with the import's pages (1M people peaked at 838 MB that way).
const IMPORT_CACHE_MIB: u32 = 256;

/// Records per bulk batch on PostgreSQL, where a batch is a transaction: every key-lock
/// stripe it takes waits for its commit, webhooks' included.
const PG_BATCH: usize = 5_000;

/// Records per bulk batch on SQLite, where sixteen batches of 5,000 or eight of 10,000 make
/// the same group (one transaction). Each batch begins with its key lookups and ends with
/// its golden records while the writer idles; half as many of them took the 1M import from
/// 69.8 / 68.7 s to 66.4 / 67.1 s, alternated, for ~35 MB more peak RSS (BENCHMARKS.md,
/// fourteenth session).
const SQLITE_BATCH: usize = 10_000;

fn reason_key(reason: &str) -> String {
    // Keep reasons free of values: only the text before any detail.
    reason.split(" at line").next().unwrap_or(reason).to_string()
}

/// What the reading thread hands to the writer: parsed records with their keys, and the
/// lines it refused.
#[derive(Default)]
struct Chunk {
    items: Vec<BulkItem>,
    read: u64,
    rejected: Vec<String>,
    bytes: u64,
}

/// Import flat records from `reader`, calling `progress(bytes_read)` as it goes. `size`
/// is the input's length in bytes, where known: a load that is large against the store
/// (estimated from it and the first chunk's bytes per record, [`worth_deferring`]) drops
/// the deferrable indexes and builds them once at its end.
///
/// One thread reads, parses and normalises while the caller's task writes the previous
/// batch, so parsing and the database overlap. Memory holds at most a few batches.
pub async fn import_file<R: Read + Send + 'static>(
    store: &Store,
    extractor: &KeyExtractor,
    reader: R,
    format: ImportFormat,
    size: Option<u64>,
    mut progress: impl FnMut(u64),
) -> StoreResult<ImportSummary> {
    let start = std::time::Instant::now();
    let mut summary = ImportSummary::default();
    let loader = store.bulk_loader(IMPORT_CACHE_MIB).await?;
    let batch = if store.is_postgres() { PG_BATCH } else { SQLITE_BATCH };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(2);
    // On SQLite the reader runs at a lower priority: on two cores, three busy threads
    // (reader, resolver, SQLite's writer) made the writer's chain wait for a core after
    // its statements; lowered, the reader takes what they leave idle and still keeps a
    // batch ahead (1M: 64.4 / 64.7 s against 67.6 / 70.7 s). Not on PostgreSQL, where the
    // server's process takes that core and the lowered reader fell behind (101–111 s
    // against 88–90 s).
    let lower_reader = !store.is_postgres();
    let reading = {
        let extractor = extractor.clone();
        std::thread::Builder::new()
            .name("import-reader".into())
            .spawn(move || {
                if lower_reader {
                    lower_this_thread(READER_NICE);
                }
                read_chunks(reader, format, &extractor, batch, |c| tx.blocking_send(c).is_ok())
            })
            .map_err(|e| crate::store::StoreError::Corrupt(format!("cannot start the reader thread: {e}")))?
    };
    let mut writer = GroupWriter::new(loader.store(), extractor);
    let mut failed = None;
    let mut deferred = Deferred::default();
    let mut first = true;
    let (mut waiting, mut writing) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    loop {
        let t = std::time::Instant::now();
        let Some(chunk) = rx.recv().await else { break };
        waiting += t.elapsed();
        let t = std::time::Instant::now();
        if std::mem::take(&mut first) {
            // Before the first write: no group holds the writer lock yet.
            if let Err(e) = defer_if_worth_it(loader.store(), size, &chunk, &mut deferred).await {
                failed = Some(e);
                break;
            }
        }
        summary.read += chunk.read;
        for reason in chunk.rejected {
            summary.rejected += 1;
            *summary.reasons.entry(reason_key(&reason)).or_default() += 1;
        }
        if let Err(e) = writer.write(chunk.items, &mut summary).await {
            failed = Some(e);
            break;
        }
        writing += t.elapsed();
        progress(chunk.bytes);
    }
    if failed.is_none() {
        if let Err(e) = writer.commit(&mut summary).await {
            failed = Some(e);
        }
    }
    tracing::debug!(
        waiting_ms = waiting.as_millis() as u64,
        writing_ms = writing.as_millis() as u64,
        "import: time waiting for parsed records vs writing them"
    );
    drop(rx); // a failed write stops the reader at its next send
    let _ = reading.join();
    // A group left open by a failure rolls back here, before the loader closes.
    drop(writer);
    deferred.restore(loader.store(), &mut summary, &mut failed).await;
    // On the loader's connection: SQLite's `PRAGMA optimize` goes by the queries that
    // connection ran.
    let refreshed = match failed {
        Some(e) => Err(e),
        None if summary.created + summary.attached > 0 => loader.store().refresh_statistics().await,
        None => Ok(()),
    };
    loader.close().await;
    refreshed?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// What a load left for its end: indexes to build, and tables whose reference to
/// customers is to be checked.
#[derive(Default)]
struct Deferred {
    indexes: Vec<&'static str>,
    references: Vec<&'static str>,
}

impl Deferred {
    /// Build the deferred indexes and check the deferred references again, noting each in
    /// `summary`. After a failed load an error here is only logged: the load's own error
    /// says more, and the next `migrate` finishes the job.
    async fn restore(&self, store: &Store, summary: &mut ImportSummary, failed: &mut Option<StoreError>) {
        if !self.indexes.is_empty() {
            let t = std::time::Instant::now();
            if settled(store.ensure_indexes().await, "indexes", failed) {
                summary.rebuilt_indexes = self.indexes.iter().map(|n| n.to_string()).collect();
                summary.index_seconds = t.elapsed().as_secs_f64();
            }
        }
        if !self.references.is_empty() {
            let t = std::time::Instant::now();
            if settled(store.ensure_references().await, "references", failed) {
                summary.checked_references = self.references.iter().map(|n| n.to_string()).collect();
                summary.reference_seconds = t.elapsed().as_secs_f64();
            }
        }
    }
}

/// Whether restoring `what` succeeded; if not, its error becomes the load's failure, or
/// only a warning when the load had already failed.
fn settled(result: StoreResult<()>, what: &str, failed: &mut Option<StoreError>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if failed.is_some() => {
            tracing::warn!(error = %e, what, "not restored after a failed import; the next migrate will");
            false
        }
        Err(e) => {
            *failed = Some(e);
            false
        }
    }
}

/// Drop the deferrable indexes and references if the whole input, estimated from its
/// `size` and the first `chunk`'s bytes per record, is worth it against the store's
/// customers (both cost a pass over every row at the end, where keeping them costs each
/// new row). What was dropped goes into `deferred`, even if a later step fails.
async fn defer_if_worth_it(
    store: &Store,
    size: Option<u64>,
    chunk: &Chunk,
    deferred: &mut Deferred,
) -> StoreResult<()> {
    let Some(size) = size else { return Ok(()) };
    if chunk.read == 0 || chunk.bytes == 0 {
        return Ok(());
    }
    let records = (size as f64 * chunk.read as f64 / chunk.bytes as f64) as u64;
    let customers = store.customer_rows().await?;
    if !worth_deferring(records, customers) {
        return Ok(());
    }
    deferred.indexes = store.defer_indexes().await?;
    deferred.references = store.defer_references().await?;
    tracing::info!(
        records,
        customers,
        indexes = ?deferred.indexes,
        references = ?deferred.references,
        "import: indexes and references deferred to the end of the load"
    );
    Ok(())
}

/// Read, parse and extract keys, handing over a chunk every `batch` records. Stops when
/// `send` says the writer is gone.
fn read_chunks<R: Read>(
    reader: R,
    format: ImportFormat,
    extractor: &KeyExtractor,
    batch: usize,
    mut send: impl FnMut(Chunk) -> bool,
) {
    let mut counting = CountingReader { inner: reader, count: 0 };
    let mut chunk = Chunk::default();
    let push = |chunk: &mut Chunk, parsed: Result<Observation, String>| {
        chunk.read += 1;
        match parsed {
            Ok(obs) => chunk.items.push(BulkItem::new(extractor, obs, None)),
            Err(reason) => chunk.rejected.push(reason),
        }
    };
    match format {
        ImportFormat::JsonLines => {
            let mut buf = BufReader::with_capacity(1 << 16, &mut counting);
            let mut line = String::new();
            loop {
                line.clear();
                let parsed = match buf.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) if line.trim().is_empty() => continue,
                    Ok(_) => match serde_json::from_str::<FlatRecord>(&line) {
                        Ok(rec) => rec.into_observation(),
                        Err(e) => Err(format!("invalid JSON record ({})", e.classify_name())),
                    },
                    Err(_) => Err("unreadable line (not UTF-8)".to_string()),
                };
                push(&mut chunk, parsed);
                if chunk.items.len() + chunk.rejected.len() >= batch {
                    chunk.bytes = buf.get_ref().count;
                    if !send(std::mem::take(&mut chunk)) {
                        return;
                    }
                }
            }
            chunk.bytes = buf.get_ref().count;
        }
        ImportFormat::Csv => {
            let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(&mut counting);
            let mut iter = rdr.deserialize::<FlatRecord>();
            while let Some(row) = iter.next() {
                let parsed = match row {
                    Ok(rec) => rec.into_observation(),
                    Err(e) => Err(format!("invalid CSV row ({})", csv_kind(&e))),
                };
                push(&mut chunk, parsed);
                if chunk.items.len() + chunk.rejected.len() >= batch {
                    chunk.bytes = iter.reader().position().byte();
                    if !send(std::mem::take(&mut chunk)) {
                        return;
                    }
                }
            }
            chunk.bytes = iter.reader().position().byte();
        }
    }
    send(chunk);
}

fn csv_kind(e: &csv::Error) -> &'static str {
    match e.kind() {
        csv::ErrorKind::Deserialize { .. } => "bad field",
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields",
        csv::ErrorKind::Utf8 { .. } => "not UTF-8",
        _ => "unreadable",
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "syntax",
            serde_json::error::Category::Data => "unknown or mistyped field",
            serde_json::error::Category::Io => "io",
        }
    }
}

/// Chunks per transaction on SQLite, at most. A batch's random index inserts dirty about
/// half the pages of the active-key index at a million customers, and SQLite writes every
/// dirty page to the WAL at each commit (and again into the database at the next
/// checkpoint); grouped chunks write each such page once per group. Groups of 80,000 records
/// (now eight chunks of [`SQLITE_BATCH`]) instead of 20,000: 13.3 → 5.8 GB written for 100k people into a 1M store, peak
/// RSS 552 → 658 MB on the 1M import (the group's records are kept until it commits, for a
/// replay). The chunks' resolution state is still freed after each one: only SQLite's page
/// cache holds the group (spilling to the WAL past its size). PostgreSQL logs rows, not
/// pages, and a long transaction there would hold its identity-key locks longer against
/// webhooks: one chunk per transaction.
const SQLITE_CHUNKS_PER_COMMIT: usize = 8;

/// A group also commits, after the chunk in hand, once it has held the writer lock this
/// long, or as soon as another writer of this process waits for the lock
/// ([`Store::writers_waiting`]). A `junction serve` in another process cannot be seen
/// waiting: its webhooks wait on SQLite's busy timeout (10 s) for the import's commit, so
/// a group must stay well under it.
const SQLITE_GROUP_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);

/// Writes chunks in groups of up to [`SQLITE_CHUNKS_PER_COMMIT`], each group in one
/// transaction, committed early past [`SQLITE_GROUP_BUDGET`] or when another writer waits.
/// A group that fails on a transient conflict (another process wrote the SQLite file
/// between its reads and its writes) is rolled back and written again one chunk per
/// transaction, with [`Store::ingest_bulk`]'s retries; so the group's chunks are kept until
/// it commits, and its outcomes are counted only then.
struct GroupWriter<'a> {
    store: &'a Store,
    extractor: &'a KeyExtractor,
    per_commit: usize,
    /// [`SQLITE_GROUP_BUDGET`] (a test shortens it).
    budget: std::time::Duration,
    tx: Option<crate::store::WriteTx>,
    /// When the open group took the writer lock.
    began: std::time::Instant,
    group: Vec<Vec<BulkItem>>,
    outcomes: Vec<IngestOutcome>,
}

impl<'a> GroupWriter<'a> {
    fn new(store: &'a Store, extractor: &'a KeyExtractor) -> Self {
        let per_commit = if store.is_postgres() { 1 } else { SQLITE_CHUNKS_PER_COMMIT };
        let began = std::time::Instant::now();
        Self {
            store,
            extractor,
            per_commit,
            budget: SQLITE_GROUP_BUDGET,
            tx: None,
            began,
            group: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    async fn write(&mut self, mut items: Vec<BulkItem>, summary: &mut ImportSummary) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        if self.per_commit == 1 {
            return apply(self.store, self.extractor, &mut items, summary).await;
        }
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => {
                // Waits behind a WAL restart that the checkpointer runs under the writer lock.
                let started = std::time::Instant::now();
                let tx = self.store.write().await?;
                tracing::debug!(waited_ms = started.elapsed().as_millis() as u64, "import: group began");
                self.began = std::time::Instant::now();
                tx
            }
        };
        match self.store.ingest_bulk_tx(&tx, self.extractor, &mut items).await {
            Ok(outcomes) => {
                self.outcomes.extend(outcomes);
                self.group.push(items);
                self.tx = Some(tx);
                if self.group.len() >= self.per_commit
                    || self.began.elapsed() >= self.budget
                    || self.store.writers_waiting()
                {
                    self.commit(summary).await?;
                }
                Ok(())
            }
            Err(e) if e.is_transient() => {
                drop(tx);
                self.group.push(items);
                self.replay(summary).await
            }
            Err(e) => Err(e),
        }
    }

    /// Commit the open group, if any.
    async fn commit(&mut self, summary: &mut ImportSummary) -> StoreResult<()> {
        let Some(tx) = self.tx.take() else { return Ok(()) };
        let started = std::time::Instant::now();
        match tx.commit().await {
            Ok(()) => {
                tracing::debug!(
                    chunks = self.group.len(),
                    commit_ms = started.elapsed().as_millis() as u64,
                    "import: group committed"
                );
                self.group.clear();
                count(std::mem::take(&mut self.outcomes), summary);
                Ok(())
            }
            Err(e) if e.is_transient() => self.replay(summary).await,
            Err(e) => Err(e),
        }
    }

    /// Write the rolled-back group again, one chunk per transaction.
    async fn replay(&mut self, summary: &mut ImportSummary) -> StoreResult<()> {
        tracing::debug!(
            chunks = self.group.len(),
            "import: group rolled back on a conflict, written again chunk by chunk"
        );
        self.outcomes.clear();
        for mut items in std::mem::take(&mut self.group) {
            apply(self.store, self.extractor, &mut items, summary).await?;
        }
        Ok(())
    }
}

async fn apply(
    store: &Store,
    extractor: &KeyExtractor,
    items: &mut [BulkItem],
    summary: &mut ImportSummary,
) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    count(store.ingest_bulk(extractor, items).await?, summary);
    Ok(())
}

/// Count a chunk's outcomes into `summary`.
fn count(outcomes: Vec<IngestOutcome>, summary: &mut ImportSummary) {
    for o in outcomes {
        if o.created {
            summary.created += 1;
        } else {
            summary.attached += 1;
        }
        summary.merged += o.merged.len() as u64;
        for r in o.rejected {
            *summary.identifiers_set_aside.entry(format!("{}: {}", r.kind.as_str(), r.reason)).or_default() += 1;
        }
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Write every live customer with identities as JSON Lines. Returns the count.
pub async fn export_customers(store: &Store, mut out: impl Write) -> anyhow::Result<u64> {
    let mut after = None;
    let mut n = 0;
    loop {
        let page = store.customers_after(after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let ids: Vec<_> = page.iter().map(|c| c.id).collect();
        let mut idents = store.identities_of(&ids).await?;
        let mut tags = store.tags_of(&ids).await?;
        for c in page {
            let identities: Vec<_> = idents
                .remove(&c.id)
                .unwrap_or_default()
                .into_iter()
                .map(|i| {
                    json!({"id": IdentityId(i.id).to_string(), "kind": i.kind, "namespace": i.namespace, "value": i.value,
                           "raw": i.raw, "status": i.status, "firstSeen": i.first_seen, "lastSeen": i.last_seen})
                })
                .collect();
            let line = json!({
                "id": CustomerId(c.id).to_string(),
                "givenName": c.given_name, "familyName": c.family_name, "fullName": c.full_name,
                "email": c.primary_email, "phone": c.primary_phone,
                "addresses": c.addresses, "traits": c.traits, "lifecycleStage": c.lifecycle_stage,
                "tags": tags.remove(&c.id).unwrap_or_default(),
                "identities": identities,
                "createdAt": c.created_at, "updatedAt": c.updated_at,
            });
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::normalize::JunkFilter;
    use crate::ingest::FlatRecord;

    fn chunk(extractor: &KeyExtractor, from: usize) -> Vec<BulkItem> {
        (from..from + 3)
            .map(|i| {
                let rec: FlatRecord = serde_json::from_value(json!({
                    "record_id": format!("r{i}"), "source": "csv", "email": format!("p{i}@example.org"),
                }))
                .unwrap();
                BulkItem::new(extractor, rec.into_observation().unwrap(), None)
            })
            .collect()
    }

    /// A migrated SQLite file store (in a directory kept while the handle lives) and an
    /// extractor with the default rules.
    async fn sqlite_store() -> (tempfile::TempDir, Store, KeyExtractor) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()), 4).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store, KeyExtractor::new(JunkFilter::new(&[], &[]).unwrap(), vec![]))
    }

    /// A group stays open across chunks while nobody else wants to write, and commits
    /// after the chunk in hand once another writer waits for the lock.
    #[tokio::test]
    async fn a_group_commits_early_when_another_writer_waits() {
        let (_dir, store, extractor) = sqlite_store().await;
        let mut writer = GroupWriter::new(&store, &extractor);
        let mut summary = ImportSummary::default();
        writer.write(chunk(&extractor, 0), &mut summary).await.unwrap();
        writer.write(chunk(&extractor, 3), &mut summary).await.unwrap();
        assert_eq!((writer.group.len(), summary.created), (2, 0), "the group is still open");

        let webhook = {
            let store = store.clone();
            tokio::spawn(async move { store.write().await.map(drop) })
        };
        while !store.writers_waiting() {
            tokio::task::yield_now().await;
        }
        writer.write(chunk(&extractor, 6), &mut summary).await.unwrap();
        assert!(writer.tx.is_none() && writer.group.is_empty(), "committed after the chunk in hand");
        assert_eq!(summary.created, 9);
        webhook.await.unwrap().unwrap();
        assert!(!store.writers_waiting());
    }

    /// A group that has held the writer lock past its budget commits after the chunk in
    /// hand: another process's writers cannot be seen waiting, only bounded.
    #[tokio::test]
    async fn a_group_commits_once_past_its_time_budget() {
        let (_dir, store, extractor) = sqlite_store().await;
        let mut writer = GroupWriter::new(&store, &extractor);
        let mut summary = ImportSummary::default();
        writer.write(chunk(&extractor, 0), &mut summary).await.unwrap();
        assert!(writer.tx.is_some(), "within the budget the group stays open");
        writer.budget = std::time::Duration::ZERO;
        writer.write(chunk(&extractor, 3), &mut summary).await.unwrap();
        assert!(writer.tx.is_none() && writer.group.is_empty());
        assert_eq!(summary.created, 6);
    }
}
