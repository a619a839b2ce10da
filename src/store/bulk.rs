//! Bulk ingestion: many observations resolved in one transaction with a handful of
//! statements instead of a dozen per record.
//!
//! The batch's keys are looked up once, with the source records of every customer found
//! and the pairs an admin kept apart; the rules then run in memory against those
//! customers, exactly as [`Store::ingest_in`] would run them one record at a time. The
//! rows they produce are handed to a writer every few hundred records, as multi-row
//! statements of a few fixed sizes, and the writer runs them on the batch's transaction
//! while the next records are resolved. Golden records are computed in memory from each
//! touched customer's source records, so the name the rules compare moves with every
//! record, and written once when the batch ends. A record that merges customers queues the
//! merge (the same ledger, moves and consents as an online merge, run by the writer on
//! written state) and carries on in memory with the survivor as the merge leaves it, then
//! attaches to it. So the result equals ingesting the records one by one, in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, Statement,
};
use serde_json::Value;
use uuid::Uuid;

use super::absent_keys::KeyFilter;
use super::customers::{created_at, identity_upsert, now, source_record_row, RecordOrder, KEEP_TAGS};
use super::entities::{customer, customer_tag, identity, merge, merge_candidate, source_record};
use super::merges::{absorbed_row_wins, dropped_identity, ordered, MergeFacts, Moved, KEEP_CANDIDATES};
use super::rows::{insert_rows, insert_statements, insert_statements_with_json_text, OnError};
use super::shapes::{padded_in, rows_per_statement, slices_of};
use super::{ph, push_tuple, IngestOutcome, Store, StoreError, StoreResult};
use crate::identity::keys::Extracted;
use crate::identity::normalize::PersonName;
use crate::identity::rules::{self, Blocked, CustomerView, HeldKey, KeyStatus, Target};
use crate::identity::survivorship::{golden_record_with, GoldenRecord};
use crate::identity::{IdentityKey, IdentityKind, KeyExtractor, Observation, RejectedIdentifier};
use crate::ids::CustomerId;

/// The batch's maps, keyed by customer ids, key digests and key texts: foldhash instead
/// of the default SipHash (the hashing was ~1 % of an import's CPU), seeded per process.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// One record of a bulk batch, with everything that depends on the record alone worked
/// out already (its keys, their digests, its parsed name, its payload): that is pure and
/// runs on another thread (the import's reader) while the previous batch is resolved and
/// written, so the batch's own thread only decides.
#[derive(Debug)]
pub struct BulkItem {
    /// Shared with the customers' histories the batch keeps (no copy per record).
    obs: Arc<Observation>,
    extracted: Extracted,
    pub region: Option<String>,
    /// The digest of each of `extracted.keys`, in order ([`IdentityKey::hash`], a SHA-256):
    /// the batch sorts, filters and looks its keys up by them before it can resolve its
    /// first record.
    hashes: Vec<Uuid>,
    /// The record's own name, as the rules compare it (`None` once taken).
    name: Option<Option<PersonName>>,
    /// The source record's payload, the observation as JSON text (`None` once taken).
    payload: Option<String>,
}

impl BulkItem {
    pub fn new(extractor: &KeyExtractor, obs: Observation, region: Option<String>) -> Self {
        let extracted = extractor.extract(&obs, region.as_deref());
        let hashes = extracted.keys.iter().map(|k| k.key.hash()).collect();
        let name = Some(name_of_record(&obs));
        let payload = serde_json::to_string(&obs).ok();
        Self { obs: Arc::new(obs), extracted, region, hashes, name, payload }
    }

    /// The record's name, worked out already unless a first attempt at its batch took it
    /// (a batch written again after a conflict works it out again).
    fn take_name(&mut self) -> Option<PersonName> {
        self.name.take().unwrap_or_else(|| name_of_record(&self.obs))
    }

    /// The record's payload, as [`BulkItem::take_name`].
    fn take_payload(&mut self) -> StoreResult<String> {
        match self.payload.take() {
            Some(text) => Ok(text),
            None => serde_json::to_string(&*self.obs).map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }
}

/// A record's own name, as the rules compare it.
fn name_of_record(obs: &Observation) -> Option<PersonName> {
    let p = &obs.profile;
    PersonName::parse(p.given_name.as_deref(), p.family_name.as_deref(), p.full_name.as_deref()).ok()
}

/// A key with its digest.
type Hashed<'k> = (Uuid, &'k IdentityKey);

/// Records resolved between two hand-overs of their rows to the writer: small enough for
/// the writer to start early, large enough to fill several multi-row statements, since
/// each hand-over ends every table in short statements for its rest. At 256 records the 1M
/// import sent ~215,000 statements, at 1,024 ~173,000: 70.6 s against 73.3 s on average
/// over four alternated runs on SQLite, PostgreSQL unchanged (BENCHMARKS.md, fourteenth
/// session).
const STREAM_RECORDS: usize = 1_024;

/// Keys per lookup statement on PostgreSQL (one array parameter).
const PG_KEYS_PER_LOOKUP: usize = 8_192;

/// Work for the writer of a batch.
enum Job {
    Run(Statement),
    /// Write the golden records of these written customers from their `history`.
    Golden {
        ids: Vec<CustomerId>,
        history: Histories,
        at: DateTime<Utc>,
    },
    /// Merge `absorbed` into `survivor` ([`Store::absorb`]); `consents` if the absorbed
    /// customer holds any (else they are not read).
    Absorb {
        /// The ledger row's id, taken when the merge was decided ([`MergeFacts::id`]).
        id: Uuid,
        survivor: CustomerId,
        absorbed: CustomerId,
        consents: bool,
        evidence: Value,
        at: DateTime<Utc>,
    },
    /// A merge made in memory ([`Pending::absorb`]): its ledger row, written with the
    /// batch's others.
    Ledger(Box<merge::ActiveModel>),
    /// Answered once everything queued before it has run.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// A batch's writer task, stopped if the batch is dropped before it ends (a cancelled
/// caller): otherwise it would run the rest of its queue on a transaction whose writer lock
/// was already released, and keep it open until then.
struct WriterTask(tokio::task::JoinHandle<StoreResult<()>>);

impl Drop for WriterTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The resolver's end of the writer's queue.
struct Queue {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// How often the resolver waited for the writer (for the batch's debug line).
    waits: std::sync::atomic::AtomicU32,
}

impl Queue {
    fn send(&self, statements: Vec<Statement>) -> StoreResult<()> {
        for s in statements {
            self.push(Job::Run(s))?;
        }
        Ok(())
    }

    fn push(&self, job: Job) -> StoreResult<()> {
        self.jobs.send(job).map_err(|_| writer_gone())
    }

    /// Wait until the writer has run everything queued so far.
    async fn drain(&self) -> StoreResult<()> {
        self.waits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (done, wait) = tokio::sync::oneshot::channel();
        self.push(Job::Barrier(done))?;
        wait.await.map_err(|_| writer_gone())
    }
}

/// The keys `filter` may have seen: without a filter, all of them.
fn may_be_held<'k>(filter: Option<&KeyFilter>, keys: Vec<Hashed<'k>>) -> Vec<Hashed<'k>> {
    match filter {
        Some(f) => keys.into_iter().filter(|(hash, _)| f.may_contain(hash)).collect(),
        None => keys,
    }
}

fn writer_gone() -> StoreError {
    StoreError::Corrupt("the batch writer stopped".into())
}

/// A customer's source records, oldest first, as a recompute reads them.
#[derive(Debug, Default, Clone)]
struct History {
    order: Vec<RecordOrder>,
    obs: Vec<Arc<Observation>>,
    /// The golden record of `obs`, once computed (the resolver computes it after each
    /// record, for the name the rules compare; the customer's row is written from it).
    golden: Option<GoldenRecord>,
}

type Histories = FastMap<CustomerId, History>;

impl History {
    fn from_rows(rows: Vec<(RecordOrder, Observation)>) -> Self {
        let (order, obs) = rows.into_iter().map(|(at, obs)| (at, Arc::new(obs))).unzip();
        Self { order, obs, golden: None }
    }

    fn push(&mut self, at: RecordOrder, obs: Arc<Observation>) {
        self.order.push(at);
        self.obs.push(obs);
        self.golden = None;
    }

    /// Take in the records of a customer merged into this one, as the merge moves them.
    fn absorb(&mut self, other: History) {
        let mine = std::mem::take(self);
        let mut a = mine.order.into_iter().zip(mine.obs).peekable();
        let mut b = other.order.into_iter().zip(other.obs).peekable();
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if y.0 < x.0 => b.next(),
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            };
            let Some((at, obs)) = next else { break };
            self.push(at, obs);
        }
    }
}

/// The name fields of a golden record (given, family, full).
fn name_of(g: &GoldenRecord) -> (Option<&str>, Option<&str>, Option<&str>) {
    (g.given_name.as_deref(), g.family_name.as_deref(), g.full_name.as_deref())
}

/// A merged-away customer's identities, as the survivor holds them after the merge: a key
/// both hold stays once, active if either held it active.
fn absorb_view(survivor: &mut CustomerView, gone: CustomerView) {
    for h in gone.identities {
        match survivor.identities.iter_mut().find(|x| x.key == h.key) {
            Some(x) => x.active |= h.active,
            None => survivor.identities.push(h),
        }
    }
}

/// Writes waiting for the next flush.
#[derive(Default)]
struct Pending {
    /// Customers created in this batch and not written yet, with their creation time: their
    /// row is written once, with its golden fields, when their identities are.
    created: BTreeMap<CustomerId, DateTime<Utc>>,
    /// One row per (customer, key), in first-write order; later writes fold in. A merge
    /// takes its parties' rows out early and leaves their slots empty.
    identities: Vec<Option<identity::Model>>,
    identity_index: FastMap<(CustomerId, Uuid), usize>,
    /// Source records, each with its payload serialised as JSON text; slots as above.
    records: Vec<Option<(source_record::ActiveModel, String)>>,
    /// Where each customer's rows are in `identities` and `records`, so that a merge takes
    /// its parties' rows at the cost of those rows, not of everything pending.
    slots: FastMap<CustomerId, Slots>,
    suggestions: Vec<merge_candidate::ActiveModel>,
    suggested: FastSet<(Uuid, Uuid)>,
    /// Customers whose golden record must be recomputed.
    touched: BTreeSet<CustomerId>,
    /// Every source record of each customer touched in this batch, oldest first: the
    /// golden record (and the name the rules compare) is computed from it in memory.
    history: Histories,
    /// Customers merged away before any row of theirs was written ([`Pending::absorb`]),
    /// until their own row is: its golden record waits in `history`, without tags (the
    /// merge moved them), and these say where it points and its primary email and phone.
    absorbed: FastMap<CustomerId, AbsorbedEarly>,
}

/// A customer merged away in memory, whose row is still to be written.
struct AbsorbedEarly {
    /// Its survivor (the live one: a later merge of the survivor moves this on).
    into: CustomerId,
    email: Option<String>,
    phone: Option<String>,
    /// Its golden record (without tags) until it is put back in `history` in its place.
    golden: Option<GoldenRecord>,
}

/// The places of one customer's rows in [`Pending`], in write order.
#[derive(Default)]
struct Slots {
    identities: Vec<usize>,
    records: Vec<usize>,
}

/// The customers met so far in the batch, as the rules see them.
#[derive(Default)]
struct Known {
    views: FastMap<CustomerId, CustomerView>,
    /// Every customer holding a key (active or set aside). A key of the batch with no
    /// entry has no holder.
    holders: FastMap<IdentityKey, Vec<CustomerId>>,
    /// The pairs that must not merge automatically among the customers read from the
    /// database (customers created in the batch have none: only an admin rejects a pair).
    blocked: Blocked,
    /// The customers holding consents, among those read from the database and the
    /// survivors of their merges (ingestion writes none; a consent written meanwhile waits
    /// for the batch: the customer's row is locked on PostgreSQL, the file on SQLite).
    consents: FastSet<CustomerId>,
}

impl Known {
    /// Room for a batch of `records` records with `keys` distinct keys: the maps grow to
    /// about that size, and each rehash on the way allocated fresh tables (first-touch page
    /// faults were ~2 % of the resolver's CPU).
    fn sized(records: usize, keys: usize) -> Self {
        Self {
            views: FastMap::with_capacity_and_hasher(records, Default::default()),
            holders: FastMap::with_capacity_and_hasher(keys, Default::default()),
            ..Self::default()
        }
    }

    fn index(&mut self, view: CustomerView) {
        for h in &view.identities {
            let list = self.holders.entry(h.key.clone()).or_default();
            if !list.contains(&view.id) {
                list.push(view.id);
            }
        }
        self.views.insert(view.id, view);
    }

    fn forget(&mut self, id: CustomerId) {
        if let Some(v) = self.views.remove(&id) {
            for h in &v.identities {
                if let Some(list) = self.holders.get_mut(&h.key) {
                    list.retain(|c| *c != id);
                }
            }
        }
    }

    fn holders_of(&self, keys: &[IdentityKey]) -> Vec<CustomerId> {
        let mut out: Vec<CustomerId> = Vec::new();
        for k in keys {
            for c in self.holders.get(k).into_iter().flatten() {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
        }
        out
    }
}

impl Store {
    /// Resolve and persist a batch in one transaction, retrying transient conflicts.
    /// Outcomes are in input order.
    pub async fn ingest_bulk(
        &self,
        extractor: &KeyExtractor,
        items: &mut [BulkItem],
    ) -> StoreResult<Vec<IngestOutcome>> {
        let mut attempt = 0;
        loop {
            let tx = self.write().await?;
            let result = match self.bulk_in(&tx.txn, extractor, items).await {
                Ok(out) => tx.commit().await.map(|_| out),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_transient() && attempt < 8 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 * (1 << attempt.min(6)))).await;
                }
                other => return other,
            }
        }
    }

    /// [`Store::ingest_bulk`] inside the caller's write transaction (inbox processing
    /// resolves a batch of events' records together, then writes their orders and events).
    pub async fn ingest_bulk_tx(
        &self,
        tx: &super::WriteTx,
        extractor: &KeyExtractor,
        items: &mut [BulkItem],
    ) -> StoreResult<Vec<IngestOutcome>> {
        self.bulk_in(&tx.txn, extractor, items).await
    }

    /// Resolve the batch while its rows are written: the decisions run here, and every
    /// [`STREAM_RECORDS`] records the rows they produced go to a writer that runs them on
    /// the same transaction, in order, while the next records are resolved (the database
    /// works on one core, the decisions on the other). A read that could see those rows
    /// waits until the writer has run everything queued before it.
    ///
    /// The writer is a task of its own, so it hands the driver its next statement as soon
    /// as the last one is done, rather than when the resolver next pauses.
    async fn bulk_in(
        &self,
        txn: &Arc<DatabaseTransaction>,
        extractor: &KeyExtractor,
        items: &mut [BulkItem],
    ) -> StoreResult<Vec<IngestOutcome>> {
        let (queue, jobs) = tokio::sync::mpsc::unbounded_channel();
        let queue = Queue { jobs: queue, waits: Default::default() };
        let mut writer = WriterTask(tokio::spawn(self.clone().run_jobs(txn.clone(), jobs)));
        let resolved = self.resolve_in(txn, extractor, items, &queue).await;
        // Closing the queue ends the writer once it has run what is queued; it must end
        // before this returns (it shares the transaction) even when resolving failed.
        drop(queue);
        // A writer that failed made the resolver fail too (its queue closed): report the cause.
        (&mut writer.0).await.map_err(|e| StoreError::Corrupt(format!("the batch writer failed: {e}")))??;
        resolved
    }

    /// Run the queued jobs in order on `txn` until the queue closes.
    async fn run_jobs(
        self,
        txn: Arc<DatabaseTransaction>,
        mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
    ) -> StoreResult<()> {
        let txn = &*txn;
        // Time spent on rows, golden records and merges, for the batch's debug line.
        let mut spent = [std::time::Duration::ZERO; 3];
        // The merges' ledger rows, written together at the end (nothing in the batch reads
        // them): one statement instead of a round trip per merge.
        let mut ledger: Vec<merge::ActiveModel> = Vec::new();
        while let Some(job) = jobs.recv().await {
            let t = std::time::Instant::now();
            let slot = match job {
                Job::Run(statement) => {
                    txn.execute(statement).await?;
                    0
                }
                Job::Golden { ids, history, at } => {
                    self.upsert_golden(txn, &ids, &history, at).await?;
                    1
                }
                Job::Absorb { id, survivor, absorbed, consents, evidence, at } => {
                    if consents {
                        self.merge_consents(txn, survivor, absorbed).await?;
                    }
                    let facts = MergeFacts { id, ..MergeFacts::automatic(survivor, absorbed, evidence, at) };
                    ledger.push(self.absorb_unrecorded(txn, facts).await?);
                    2
                }
                Job::Ledger(row) => {
                    ledger.push(*row);
                    continue;
                }
                Job::Barrier(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            spent[slot] += t.elapsed();
        }
        let t = std::time::Instant::now();
        insert_rows(txn, ledger, "").await?;
        spent[2] += t.elapsed();
        let [rows, golden, merges] = spent.map(|d| d.as_millis() as u64);
        tracing::debug!(rows_ms = rows, golden_ms = golden, merges_ms = merges, "bulk batch written");
        Ok(())
    }

    async fn resolve_in(
        &self,
        txn: &DatabaseTransaction,
        extractor: &KeyExtractor,
        items: &mut [BulkItem],
        queue: &Queue,
    ) -> StoreResult<Vec<IngestOutcome>> {
        let b = self.backend();
        let at = now();
        let started = std::time::Instant::now();
        let queries_before = self.query_count();
        // Merges, and absorbed customers merged in memory before any row of theirs was written.
        let (mut merges, mut early_merges) = (0usize, 0usize);
        // By digest: a sort of 16-byte values, and a set of them, rather than of key texts.
        let mut all_keys: Vec<Hashed> =
            items.iter().flat_map(|i| i.hashes.iter().copied().zip(i.extracted.keys.iter().map(|k| &k.key))).collect();
        all_keys.sort_unstable_by_key(|(hash, _)| *hash);
        all_keys.dedup_by_key(|(hash, _)| *hash);
        let mut looked_up: FastSet<Uuid> = all_keys.iter().map(|(hash, _)| *hash).collect();
        let mut known = Known::sized(items.len(), all_keys.len());
        let history = Histories::with_capacity_and_hasher(items.len(), Default::default());
        let mut pending = Pending::sized(history, BTreeSet::new(), FastMap::default());
        // An import's own connection skips the keys its filter has never seen.
        let mut absent = match &self.absent_keys {
            Some(a) => Some(a.lock().await),
            None => None,
        };
        let mut filter = match absent.as_deref_mut() {
            Some(a) => a.refresh(txn, all_keys.len()).await?,
            None => None,
        };
        let lookup = may_be_held(filter.as_deref(), all_keys);
        self.load_holders(txn, &lookup, &mut known, &mut pending.history).await?;
        let looked_up_in = started.elapsed();

        let mut out = Vec::with_capacity(items.len());
        for item in items.iter_mut() {
            let (name, payload) = (item.take_name(), item.take_payload()?);
            let item = &*item;
            let obs: &Observation = &item.obs;
            // Copied only where resolving its phones changes it.
            let mut extracted = std::borrow::Cow::Borrowed(&item.extracted);
            if !extracted.deferred_phones.is_empty() {
                // As the one-record path: regions of the record's phones that someone holds.
                let mut regions: Vec<String> = Vec::new();
                for k in extracted.keys.iter().filter(|k| k.key.kind == IdentityKind::Phone) {
                    if known.holders.get(&k.key).is_none_or(Vec::is_empty) {
                        continue;
                    }
                    if let Ok((_, Some(r))) = extractor.phone_key(&k.key.value, extractor.hints(None, None, &[])) {
                        if !regions.contains(&r) {
                            regions.push(r);
                        }
                    }
                }
                extractor.resolve_deferred(extracted.to_mut(), obs, item.region.as_deref(), &regions);
                let fresh: Vec<Hashed> = extracted
                    .keys
                    .iter()
                    .map(|k| (k.key.hash(), &k.key))
                    .filter(|(hash, _)| !looked_up.contains(hash))
                    .collect();
                looked_up.extend(fresh.iter().map(|(hash, _)| *hash));
                let lookup = may_be_held(filter.as_deref(), fresh);
                if !lookup.is_empty() {
                    // Nothing in this batch wrote these keys, so the database knows every holder.
                    queue.drain().await?;
                    self.load_holders(txn, &lookup, &mut known, &mut pending.history).await?;
                }
            }
            let record_keys: Vec<IdentityKey> = extracted.keys.iter().map(|k| k.key.clone()).collect();
            let mut holder_ids = known.holders_of(&record_keys);
            holder_ids.sort_unstable();
            let views: Vec<&CustomerView> = holder_ids.iter().filter_map(|c| known.views.get(c)).collect();
            let plan = rules::plan(extractor.rules(), &record_keys, name.as_ref(), &views, &known.blocked, None);

            let (customer_id, created, merged) = match plan.target {
                Target::Create => {
                    let id = CustomerId::new();
                    pending.created.insert(id, created_at(obs, at));
                    known.views.insert(id, CustomerView { id, name: None, identities: vec![] });
                    pending.history.insert(id, History::default());
                    (id, true, vec![])
                }
                Target::Attach(id) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = pending.history.entry(id) {
                        queue.drain().await?;
                        let rows = self.source_histories_of(txn, &[id.0]).await?.remove(&id).unwrap_or_default();
                        slot.insert(History::from_rows(rows));
                    }
                    (id, false, vec![])
                }
                Target::Merge { survivor, absorbed } => {
                    merges += 1;
                    let evidence = serde_json::to_value(&plan.evidence).unwrap_or(Value::Null);
                    let facts = |a: CustomerId| MergeFacts {
                        id: Uuid::now_v7(),
                        ..MergeFacts::automatic(survivor, a, evidence.clone(), at)
                    };
                    if absorbed.iter().all(|a| pending.absorbable(*a, survivor, &known)) {
                        // Nothing of the absorbed customers is written yet: merge their pending
                        // rows here, as the merge would move them, and queue only the ledger.
                        early_merges += absorbed.len();
                        for a in &absorbed {
                            let row = pending.absorb(survivor, *a, facts(*a), &self.survivorship);
                            queue.push(Job::Ledger(Box::new(row)))?;
                        }
                    } else {
                        // The writer absorbs on written state, after the rows so far (the
                        // parties' pending rows first); the rules carry on here with the
                        // survivor as the merge leaves it.
                        let parties: Vec<CustomerId> =
                            std::iter::once(survivor).chain(absorbed.iter().copied()).collect();
                        let theirs = pending.take_rows_of(&parties);
                        queue.send(self.statements_of(b, theirs, &mut pending, at)?)?;
                        let early: Vec<CustomerId> =
                            absorbed.iter().filter(|a| pending.touched.remove(*a)).copied().collect();
                        if !early.is_empty() {
                            let history =
                                early.iter().filter_map(|a| Some((*a, pending.history.get(a)?.clone()))).collect();
                            queue.push(Job::Golden { ids: early, history, at })?;
                        }
                        for a in &absorbed {
                            let consents = known.consents.contains(a);
                            if consents {
                                known.consents.insert(survivor);
                            }
                            let MergeFacts { id, evidence, .. } = facts(*a);
                            queue.push(Job::Absorb { id, survivor, absorbed: *a, consents, evidence, at })?;
                        }
                    }
                    let mut merged = known.views.get(&survivor).cloned().expect("a merged customer is known");
                    let mut records = pending.history.remove(&survivor).expect("a known customer's history");
                    for a in &absorbed {
                        absorb_view(&mut merged, known.views.get(a).cloned().expect("a merged customer is known"));
                        known.forget(*a);
                        records.absorb(pending.history.remove(a).expect("a known customer's history"));
                        if let Some(golden) = pending.absorbed.get_mut(a).and_then(|x| x.golden.take()) {
                            // The row still to be written keeps the golden record it had.
                            pending.history.insert(*a, History { golden: Some(golden), ..History::default() });
                        }
                    }
                    known.forget(survivor);
                    known.index(merged);
                    pending.history.insert(survivor, records);
                    (survivor, false, absorbed)
                }
            };
            let mut rejected = extracted.rejected.clone();
            let view = known.views.get_mut(&customer_id).expect("the target customer is known");
            // The item's digests, unless resolving its phones changed its keys.
            let recomputed: Vec<Uuid>;
            let hashes: &[Uuid] = if item.extracted.deferred_phones.is_empty() {
                &item.hashes
            } else {
                recomputed = extracted.keys.iter().map(|k| k.key.hash()).collect();
                &recomputed
            };
            for (k, &hash) in extracted.keys.iter().zip(hashes) {
                let Some((_, status)) = plan.keys.iter().find(|(pk, _)| pk == &k.key) else { continue };
                if let KeyStatus::SetAside(reason) = status {
                    rejected.push(RejectedIdentifier { kind: k.key.kind, raw: k.raw.clone(), reason: reason.clone() });
                }
                let written =
                    pending.write_identity(customer_id, k.key.clone(), hash, &k.raw, status, &obs.source.namespace, at);
                if let (Some(f), true) = (filter.as_deref_mut(), written) {
                    f.insert(&hash);
                }
                let active = matches!(status, KeyStatus::Active);
                match view.identities.iter_mut().find(|h| h.key == k.key) {
                    Some(h) => h.active |= active,
                    None => view.identities.push(HeldKey { key: k.key.clone(), active }),
                }
                let list = known.holders.entry(k.key.clone()).or_default();
                if !list.contains(&customer_id) {
                    list.push(customer_id);
                }
            }
            // The golden name moves with every record, as a recompute would move it.
            let record = source_record_row(customer_id, obs, at);
            let history = pending.history.get_mut(&customer_id).expect("history loaded above");
            // The golden record before this record, whose name `view.name` holds parsed.
            let before = history.golden.take();
            history.push((at, *record.id.as_ref()), item.obs.clone());
            let golden = golden_record_with(&self.survivorship, &history.obs);
            let p = &obs.profile;
            if name_of(&golden) == (p.given_name.as_deref(), p.family_name.as_deref(), p.full_name.as_deref()) {
                // The record's own name won (always, for a new customer).
                view.name = name;
            } else if before.as_ref().is_none_or(|b| name_of(b) != name_of(&golden)) {
                let (given, family, full) = name_of(&golden);
                view.name = PersonName::parse(given, family, full).ok();
            }
            history.golden = Some(golden);
            for s in &plan.suggestions {
                if s.other != customer_id {
                    let evidence = serde_json::to_value(&s.evidence).unwrap_or(Value::Null);
                    pending.suggest(customer_id, s.other, &s.rule, evidence, at);
                }
            }
            pending.push_record(customer_id, record, payload);
            pending.touched.insert(customer_id);
            out.push(IngestOutcome { customer_id, created, merged, rejected });
            if pending.records.len() >= STREAM_RECORDS {
                queue.send(self.row_statements(b, &mut pending, at)?)?;
            }
            // On a current-thread runtime (tests, embedders) the writer task runs only when
            // this one pauses: let it hand its next statement to the database.
            tokio::task::yield_now().await;
        }
        let resolved_in = started.elapsed();
        queue.send(self.row_statements(b, &mut pending, at)?)?;
        queue.drain().await?;
        let drained_in = started.elapsed();
        self.flush(txn, &mut pending, at).await?;
        tracing::debug!(
            records = items.len(),
            merges,
            early_merges,
            resolve_ms = resolved_in.as_millis() as u64,
            drained_ms = drained_in.as_millis() as u64,
            waits = queue.waits.load(std::sync::atomic::Ordering::Relaxed),
            lookup_ms = looked_up_in.as_millis() as u64,
            statements = self.query_count() - queries_before,
            total_ms = started.elapsed().as_millis() as u64,
            "bulk batch resolved"
        );
        Ok(out)
    }

    /// Look up the holders of `keys` and add the customers not known yet (their views and
    /// source records come from the database, which is current for customers this batch
    /// has not touched).
    async fn load_holders(
        &self,
        txn: &DatabaseTransaction,
        keys: &[Hashed<'_>],
        known: &mut Known,
        history: &mut Histories,
    ) -> StoreResult<()> {
        let t = std::time::Instant::now();
        let hashes: Vec<Uuid> = keys.iter().map(|(hash, _)| *hash).collect();
        self.lock_key_set(txn, &hashes).await?;
        let held = self.holders_of_keys(txn, &hashes).await?;
        let keys_ms = t.elapsed().as_millis() as u64;
        let ids: Vec<Uuid> = held
            .iter()
            .map(|h| h.customer_id)
            .filter(|id| !known.views.contains_key(&CustomerId(*id)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let live: Vec<Uuid> = self
            .live_ids(txn, &ids)
            .await?
            .into_iter()
            .filter(|id| !known.views.contains_key(&CustomerId(*id)))
            .collect();
        let t = std::time::Instant::now();
        for view in self.customer_views(txn, &live).await? {
            known.index(view);
        }
        known.blocked.extend(self.pairs_blocked_around(txn, &live).await?);
        known.consents.extend(self.customers_with_consents(txn, &live).await?);
        let unread: Vec<Uuid> = live.into_iter().filter(|id| !history.contains_key(&CustomerId(*id))).collect();
        let customers = unread.len();
        history.extend(
            self.source_histories_of(txn, &unread).await?.into_iter().map(|(c, rows)| (c, History::from_rows(rows))),
        );
        tracing::debug!(
            keys = keys.len(),
            held = held.len(),
            customers,
            keys_ms,
            customers_ms = t.elapsed().as_millis() as u64,
            "bulk lookup"
        );
        Ok(())
    }

    /// Take the advisory lock of every key (by its digest), in one sorted statement
    /// (PostgreSQL; SQLite's writer lock already serialises writes).
    pub(crate) async fn lock_key_set(&self, txn: &DatabaseTransaction, hashes: &[Uuid]) -> StoreResult<()> {
        if !self.is_postgres() || hashes.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<i64> = hashes.iter().map(super::customers::lock_id).collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(5_000) {
            let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            // Integers of our own making, so inlining them is safe; unnest keeps the order.
            let sql = format!("SELECT COUNT(pg_advisory_xact_lock(x)) FROM unnest(ARRAY[{list}]::int8[]) AS t(x)");
            // Unprepared: the text differs every time, so caching it would only evict others.
            txn.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    /// Identity rows (any status) holding any of the keys whose digests are `hashes`.
    async fn holders_of_keys(&self, txn: &DatabaseTransaction, hashes: &[Uuid]) -> StoreResult<Vec<identity::Model>> {
        let b = self.backend();
        // Active and set-aside holders apart, each arm through its partial index.
        let columns = "i.id, i.customer_id, i.kind, i.namespace, i.value, i.key_hash, i.raw, i.source_connector, \
                       i.status, i.set_aside_reason, i.first_seen, i.last_seen";
        let mut rows = Vec::new();
        if self.is_postgres() {
            // One array parameter: no statement per 256 keys, and the index is walked in
            // the array's sorted order.
            for chunk in hashes.chunks(PG_KEYS_PER_LOOKUP) {
                let values: Vec<sea_orm::Value> = chunk.iter().map(|h| (*h).into()).collect();
                let array = sea_orm::Value::Array(sea_orm::sea_query::ArrayType::Uuid, Some(Box::new(values)));
                let sql = format!(
                    "SELECT {columns} FROM identities i WHERE i.status = 'active' AND i.key_hash = ANY($1) \
                     UNION ALL \
                     SELECT {columns} FROM identities i WHERE i.status <> 'active' AND i.key_hash = ANY($1)"
                );
                rows.extend(
                    identity::Model::find_by_statement(Statement::from_sql_and_values(b, sql, [array]))
                        .all(txn)
                        .await?,
                );
            }
            return Ok(rows);
        }
        for chunk in slices_of(hashes, rows_per_statement(1)) {
            let values: Vec<sea_orm::Value> = chunk.iter().map(|h| (*h).into()).collect();
            let tuples: Vec<String> = (1..=chunk.len()).map(|i| format!("({})", ph(b, i))).collect();
            let sql = format!(
                "WITH v (key_hash) AS (VALUES {}) \
                 SELECT {columns} FROM v JOIN identities i ON i.status = 'active' AND i.key_hash = v.key_hash \
                 UNION ALL \
                 SELECT {columns} FROM v JOIN identities i ON i.status <> 'active' AND i.key_hash = v.key_hash",
                tuples.join(", ")
            );
            rows.extend(
                identity::Model::find_by_statement(Statement::from_sql_and_values(b, sql, values)).all(txn).await?,
            );
        }
        Ok(rows)
    }

    /// Follow `merged_into` from each id to its live customer, locking live rows on
    /// PostgreSQL.
    async fn live_ids(&self, txn: &DatabaseTransaction, ids: &[Uuid]) -> StoreResult<Vec<Uuid>> {
        use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
        let mut live: BTreeSet<Uuid> = BTreeSet::new();
        let mut frontier: Vec<Uuid> = ids.to_vec();
        for _ in 0..32 {
            if frontier.is_empty() {
                return Ok(live.into_iter().collect());
            }
            let mut next = Vec::new();
            for chunk in padded_in(&frontier, 256) {
                let mut q = customer::Entity::find().filter(customer::Column::Id.is_in(chunk));
                if self.is_postgres() {
                    q = q.lock_exclusive();
                }
                for row in q.all(txn).await? {
                    match row.merged_into {
                        Some(to) => next.push(to),
                        None => {
                            live.insert(row.id);
                        }
                    }
                }
            }
            next.retain(|id| !live.contains(id));
            next.sort_unstable();
            next.dedup();
            frontier = next;
        }
        Err(StoreError::Corrupt("merge chain too long".into()))
    }

    /// Recompute the golden record of each touched customer (the rows are written).
    async fn flush(&self, txn: &DatabaseTransaction, pending: &mut Pending, at: DateTime<Utc>) -> StoreResult<()> {
        let touched: Vec<CustomerId> = std::mem::take(&mut pending.touched).into_iter().collect();
        for chunk in slices_of(&touched, rows_per_statement(GOLDEN_COLUMNS)) {
            self.upsert_golden(txn, chunk, &pending.history, at).await?;
        }
        Ok(())
    }

    /// The statements that write the pending rows, which leave `pending`. Touched customers
    /// and their history stay: golden records are computed from the history once, when the
    /// batch ends (tags are a union, so no intermediate golden record is missed).
    fn row_statements(&self, b: DbBackend, pending: &mut Pending, at: DateTime<Utc>) -> StoreResult<Vec<Statement>> {
        let p = Pending::sized(
            std::mem::take(&mut pending.history),
            std::mem::take(&mut pending.touched),
            std::mem::take(&mut pending.absorbed),
        );
        let p = std::mem::replace(pending, p);
        self.statements_of(b, p, pending, at)
    }

    /// How the bulk path's inserts of new rows treat a broken constraint:
    /// [`OnError::Fail`] on an import's own SQLite connection ([`Store::bulk_loader`]),
    /// which needs no statement journal then.
    fn bulk_on_error(&self) -> OnError {
        if self.or_fail {
            OnError::Fail
        } else {
            OnError::Abort
        }
    }

    /// The statements writing the rows of `p`, taken out of `pending` (whose history gives
    /// the golden fields of new customers, which leave its `touched`).
    fn statements_of(
        &self,
        b: DbBackend,
        p: Pending,
        pending: &mut Pending,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<Statement>> {
        // New customers first (identities refer to them), golden fields included; their
        // primary email and phone come from their identities, all of them still pending.
        let mut out = Vec::new();
        let new: Vec<CustomerId> = p.created.keys().copied().collect();
        // Newest first, as the database would order them (all pending rows share `at`).
        let identities: Vec<identity::Model> = p.identities.into_iter().flatten().collect();
        let primaries = primaries_of(identities.iter().rev().filter(|i| i.status == "active"));
        let rows = NewRows { created: &p.created, absorbed: &pending.absorbed };
        for chunk in slices_of(&new, rows_per_statement(GOLDEN_COLUMNS + 1)) {
            out.extend(self.golden_statements(b, chunk, &pending.history, &primaries, Some(rows), at)?);
        }
        for id in &new {
            pending.touched.remove(id);
            pending.absorbed.remove(id);
        }
        // The rows of customers created here are new: a plain insert (each upsert costs
        // PostgreSQL a speculative insertion). The others may exist and fold in.
        let (fresh, rest): (Vec<identity::Model>, Vec<identity::Model>) =
            identities.into_iter().partition(|i| p.created.contains_key(&CustomerId(i.customer_id)));
        let (active, aside): (Vec<identity::Model>, Vec<identity::Model>) =
            rest.into_iter().partition(|i| i.status == "active");
        let models = |rows: Vec<identity::Model>| rows.into_iter().map(identity::ActiveModel::from).collect::<Vec<_>>();
        let e = self.bulk_on_error();
        out.extend(insert_statements(b, e, models(fresh), "")?);
        out.extend(insert_statements(b, e, models(active), identity_upsert(true))?);
        out.extend(insert_statements(b, e, models(aside), identity_upsert(false))?);
        let records: Vec<_> = p.records.into_iter().flatten().collect();
        out.extend(insert_statements_with_json_text(b, e, records, source_record::Column::Payload, "")?);
        out.extend(insert_statements(b, e, p.suggestions, KEEP_CANDIDATES)?);
        Ok(out)
    }

    /// Write the golden records of `ids` (written customers), computed from their complete
    /// `history`, with one upsert for all; their primary email and phone (the most recent
    /// active identities) are read from the database.
    async fn upsert_golden(
        &self,
        txn: &DatabaseTransaction,
        ids: &[CustomerId],
        history: &Histories,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        if ids.is_empty() {
            return Ok(());
        }
        let raw: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
        // Newest first.
        let read = identity::Entity::find()
            .filter(identity::Column::CustomerId.is_in(padded_in(&raw, 256).concat()))
            .filter(identity::Column::Status.eq("active"))
            .order_by_desc(identity::Column::LastSeen)
            .order_by_desc(identity::Column::Id)
            .all(txn)
            .await?;
        let primaries = primaries_of(read.iter());
        for statement in self.golden_statements(self.backend(), ids, history, &primaries, None, at)? {
            txn.execute(statement).await?;
        }
        Ok(())
    }

    /// The upsert of the golden records of `ids`, computed from their complete `history`,
    /// with their `primaries` (an upsert on the primary key rather than UPDATE … FROM
    /// (VALUES …): SQLite may plan the latter as a scan of every customer). With `created`,
    /// `ids` are customers not written yet, inserted with their time in it.
    fn golden_statements(
        &self,
        b: DbBackend,
        ids: &[CustomerId],
        history: &Histories,
        primaries: &Primaries,
        new: Option<NewRows<'_>>,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<Statement>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        // A new row also says whether it was merged away before it was written.
        let width = if new.is_some() { GOLDEN_COLUMNS + 1 } else { GOLDEN_COLUMNS };
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(ids.len() * width);
        // The VALUES list, one tuple per customer.
        let mut tuples = String::with_capacity(ids.len() * width * 4);
        let mut tags: Vec<customer_tag::ActiveModel> = Vec::new();
        for id in ids {
            let computed;
            let golden = match history.get(id) {
                Some(History { golden: Some(g), .. }) => g,
                h => {
                    computed = golden_record_with(&self.survivorship, h.map(|h| h.obs.as_slice()).unwrap_or(&[]));
                    &computed
                }
            };
            // Serialised from the golden record's own map unless the birth date joins it.
            let traits = match golden.birth_date {
                Some(d) => {
                    let mut traits = golden.traits.clone();
                    traits.insert("birthDate".into(), Value::String(d.to_string()));
                    serde_json::to_string(&traits)
                }
                None => serde_json::to_string(&golden.traits),
            };
            // The JSON columns (addresses and traits) are bound as text: a document tree would
            // be deep-copied on its way to the driver, which then serialises it anyway.
            push_tuple(&mut tuples, b, values.len(), width, |c| c == 6 || c == 7);
            let early = new.and_then(|n| n.absorbed.get(id));
            let primary = |kind: IdentityKind| primaries.get(&(id.0, kind.as_str())).cloned();
            let (email, phone) = match early {
                Some(x) => (x.email.clone(), x.phone.clone()),
                None => (primary(IdentityKind::Email), primary(IdentityKind::Phone)),
            };
            values.push(id.0.into());
            values.push(golden.given_name.clone().into());
            values.push(golden.family_name.clone().into());
            values.push(golden.full_name.clone().into());
            values.push(email.into());
            values.push(phone.into());
            values.push(serde_json::to_string(&golden.addresses).unwrap_or_else(|_| "[]".into()).into());
            values.push(traits.unwrap_or_else(|_| "{}".into()).into());
            // Version and creation time count only for a new row: a recompute after creation
            // leaves a new customer at version 1.
            values.push(1i64.into());
            values.push(new.and_then(|n| n.created.get(id)).copied().unwrap_or(at).into());
            values.push(at.into());
            if new.is_some() {
                values.push(early.map(|x| x.into.0).into());
            }
            tags.extend(golden.tags.iter().map(|t| customer_tag::ActiveModel {
                customer_id: Set(id.0),
                tag: Set(t.clone()),
                created_at: Set(at),
            }));
        }
        // Customers created in this batch cannot exist yet, nor their tags: plain inserts (an
        // upsert costs each row a conflict check, and PostgreSQL a speculative insertion).
        let (on_error, merged_into, upsert, tags_tail) = if new.is_some() {
            (self.bulk_on_error(), ", merged_into", "", "")
        } else {
            (
                OnError::Abort,
                "",
                " ON CONFLICT (id) DO UPDATE SET given_name = excluded.given_name, family_name = excluded.family_name, \
               full_name = excluded.full_name, primary_email = excluded.primary_email, \
               primary_phone = excluded.primary_phone, addresses = excluded.addresses, traits = excluded.traits, \
               version = customers.version + 1, updated_at = excluded.updated_at",
                KEEP_TAGS,
            )
        };
        let sql = format!(
            "{} INTO customers (id, given_name, family_name, full_name, primary_email, primary_phone, addresses, \
               traits, version, created_at, updated_at{merged_into}) VALUES {}{upsert}",
            on_error.verb(),
            tuples
        );
        let mut out = vec![Statement::from_sql_and_values(b, sql, values)];
        out.extend(insert_statements(b, on_error, tags, tags_tail)?);
        Ok(out)
    }
}

/// Columns of a golden row (a new row adds `merged_into`).
const GOLDEN_COLUMNS: usize = 11;

/// What the insert of customers created in a batch needs beside their golden records: when
/// each was created, and which were merged away before they were written.
#[derive(Clone, Copy)]
struct NewRows<'a> {
    created: &'a BTreeMap<CustomerId, DateTime<Utc>>,
    absorbed: &'a FastMap<CustomerId, AbsorbedEarly>,
}

/// The primary email and phone of each customer: the first active identity of each kind in
/// `newest_first`.
type Primaries = FastMap<(Uuid, &'static str), String>;

fn primaries_of<'a>(newest_first: impl Iterator<Item = &'a identity::Model>) -> Primaries {
    let mut primaries = Primaries::default();
    for i in newest_first {
        let kind = match IdentityKind::parse(&i.kind) {
            Some(k @ (IdentityKind::Email | IdentityKind::Phone)) => k,
            _ => continue,
        };
        primaries.entry((i.customer_id, kind.as_str())).or_insert_with(|| {
            if kind == IdentityKind::Email {
                i.raw.clone().unwrap_or_else(|| i.value.clone()).trim().to_lowercase()
            } else {
                i.value.clone()
            }
        });
    }
    primaries
}

impl Pending {
    /// Nothing pending yet, with room for a hand-over's rows ([`STREAM_RECORDS`] records,
    /// under two identities each on average), so that filling it does not grow its tables
    /// step by step; `history`, `touched` and `absorbed` carry over.
    fn sized(history: Histories, touched: BTreeSet<CustomerId>, absorbed: FastMap<CustomerId, AbsorbedEarly>) -> Self {
        Self {
            absorbed,
            identities: Vec::with_capacity(2 * STREAM_RECORDS),
            identity_index: FastMap::with_capacity_and_hasher(2 * STREAM_RECORDS, Default::default()),
            records: Vec::with_capacity(STREAM_RECORDS),
            slots: FastMap::with_capacity_and_hasher(STREAM_RECORDS, Default::default()),
            history,
            touched,
            ..Default::default()
        }
    }

    /// The pending rows a merge of `customers` reads or changes: their customer, identity
    /// and source-record rows, and the suggestions among them. The other rows stay, so a
    /// merge costs its own statements rather than a flush of every table in small,
    /// odd-sized pieces.
    fn take_rows_of(&mut self, customers: &[CustomerId]) -> Pending {
        let mine = |c: &Uuid| customers.iter().any(|x| x.0 == *c);
        let mut out = Pending::default();
        let (mut identities, mut records) = (Vec::new(), Vec::new());
        // Customers merged away early into a party: their rows are written with it, so
        // that the party's own merge on written state redirects them too.
        let early: Vec<CustomerId> =
            self.absorbed.iter().filter(|(_, x)| customers.contains(&x.into)).map(|(c, _)| *c).collect();
        for c in early.iter().chain(customers) {
            if let Some(t) = self.created.remove(c) {
                out.created.insert(*c, t);
            }
        }
        for c in customers {
            if let Some(slots) = self.slots.remove(c) {
                identities.extend(slots.identities);
                records.extend(slots.records);
            }
        }
        // In write order, as they would have gone with the others.
        identities.sort_unstable();
        records.sort_unstable();
        for i in identities {
            if let Some(row) = self.identities[i].take() {
                self.identity_index.remove(&(CustomerId(row.customer_id), row.key_hash));
                out.identities.push(Some(row));
            }
        }
        out.records = records.into_iter().filter_map(|i| self.records[i].take()).map(Some).collect();
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.suggestions)
            .into_iter()
            .partition(|s: &merge_candidate::ActiveModel| mine(s.customer_a.as_ref()) && mine(s.customer_b.as_ref()));
        out.suggestions = taken;
        self.suggestions = kept;
        out
    }

    /// Whether merging `absorbed` into `survivor` can be done here, on the pending rows:
    /// nothing of `absorbed` is written yet (its row is pending, so are all its rows), and
    /// no row of the survivor that is already written would be dropped for one of its keys
    /// (with a written survivor: no key held by both).
    fn absorbable(&self, absorbed: CustomerId, survivor: CustomerId, known: &Known) -> bool {
        if !self.created.contains_key(&absorbed) {
            return false;
        }
        if self.created.contains_key(&survivor) {
            return true;
        }
        let (Some(a), Some(s)) = (known.views.get(&absorbed), known.views.get(&survivor)) else { return false };
        !a.identities.iter().any(|h| s.identities.iter().any(|x| x.key == h.key))
    }

    /// Merge `absorbed` (nothing of it written) into `survivor` on the pending rows, as
    /// [`Store::absorb_unrecorded`] would on written ones, and return the merge's ledger
    /// row: its identity rows move to the survivor (of a key both hold, the survivor keeps
    /// one row, the active one if either is active; the other is dropped), so do its source
    /// records; its tags are the survivor's (its own row is written without them), customers
    /// merged into it before point to the survivor, and their pending suggestion is accepted.
    /// Its row is written later, pointing to the survivor, with its golden record and primary
    /// email and phone as they were before the merge.
    fn absorb(
        &mut self,
        survivor: CustomerId,
        absorbed: CustomerId,
        facts: MergeFacts<'static>,
        policy: &crate::identity::survivorship::SurvivorshipPolicy,
    ) -> merge::ActiveModel {
        let slots = self.slots.remove(&absorbed).unwrap_or_default();
        let mut golden = match self.history.get(&absorbed) {
            Some(History { golden: Some(g), .. }) => g.clone(),
            h => golden_record_with(policy, h.map(|h| h.obs.as_slice()).unwrap_or(&[])),
        };
        let tags = std::mem::take(&mut golden.tags);
        let primaries = primaries_of(
            slots.identities.iter().rev().filter_map(|&i| self.identities[i].as_ref()).filter(|r| r.status == "active"),
        );
        let primary = |kind: IdentityKind| primaries.get(&(absorbed.0, kind.as_str())).cloned();
        let (email, phone) = (primary(IdentityKind::Email), primary(IdentityKind::Phone));

        let mut moved = Moved { tags, ..Moved::default() };
        let mut own = slots.identities;
        own.sort_unstable();
        for i in own {
            let Some(mut row) = self.identities[i].take() else { continue };
            self.identity_index.remove(&(absorbed, row.key_hash));
            let theirs = self.identity_index.get(&(survivor, row.key_hash)).copied();
            if let Some(j) = theirs {
                let kept = self.identities[j].as_ref().is_some_and(|s| !absorbed_row_wins(&row, s));
                if kept {
                    moved.dropped_identities.push(dropped_identity(&row));
                    continue;
                }
                if let Some(lost) = self.identities[j].take() {
                    moved.dropped_identities.push(dropped_identity(&lost));
                }
            }
            row.customer_id = survivor.0;
            moved.identities.push(row.id);
            self.identity_index.insert((survivor, row.key_hash), i);
            self.slots.entry(survivor).or_default().identities.push(i);
            self.identities[i] = Some(row);
        }
        for i in slots.records {
            if let Some((record, _)) = self.records[i].as_mut() {
                record.customer_id = Set(Some(survivor.0));
                moved.source_records.push(*record.id.as_ref());
                self.slots.entry(survivor).or_default().records.push(i);
            }
        }
        for (c, x) in self.absorbed.iter_mut() {
            if x.into == absorbed {
                x.into = survivor;
                moved.redirected.push(c.0);
            }
        }
        moved.redirected.sort_unstable();
        let pair = ordered(survivor.0, absorbed.0);
        for s in self.suggestions.iter_mut() {
            if (*s.customer_a.as_ref(), *s.customer_b.as_ref()) == pair && s.status.as_ref() == "pending" {
                s.status = Set("accepted".into());
                s.decided_at = Set(Some(facts.at));
                s.decided_by = Set(Some(facts.actor.to_string()));
            }
        }
        self.touched.remove(&absorbed);
        self.absorbed.insert(absorbed, AbsorbedEarly { into: survivor, email, phone, golden: Some(golden) });
        facts.ledger_row(moved)
    }

    /// Queue a source record of `customer` with its payload.
    fn push_record(&mut self, customer: CustomerId, record: source_record::ActiveModel, payload: String) {
        self.slots.entry(customer).or_default().records.push(self.records.len());
        self.records.push(Some((record, payload)));
    }

    /// Fold an identity write into the pending row for (customer, key), as the
    /// one-record upsert would: an active write claims the key and takes the latest raw
    /// form; a set-aside write only marks it seen. Returns whether it adds a row. `key_hash`
    /// is the key's digest.
    #[allow(clippy::too_many_arguments)]
    fn write_identity(
        &mut self,
        customer: CustomerId,
        key: IdentityKey,
        key_hash: Uuid,
        raw: &str,
        status: &KeyStatus,
        namespace: &str,
        at: DateTime<Utc>,
    ) -> bool {
        let slot = (customer, key_hash);
        if let Some(&i) = self.identity_index.get(&slot) {
            if let (KeyStatus::Active, Some(row)) = (status, self.identities[i].as_mut()) {
                row.raw = Some(raw.to_string());
                row.status = "active".into();
                row.set_aside_reason = None;
            }
            return false;
        }
        let (status, reason) = match status {
            KeyStatus::Active => ("active".to_string(), None),
            KeyStatus::SetAside(r) => ("set_aside".to_string(), Some(r.clone())),
        };
        self.identity_index.insert(slot, self.identities.len());
        self.slots.entry(customer).or_default().identities.push(self.identities.len());
        self.identities.push(Some(identity::Model {
            id: Uuid::now_v7(),
            customer_id: customer.0,
            key_hash,
            kind: key.kind.as_str().to_string(),
            namespace: key.namespace,
            value: key.value,
            raw: Some(raw.to_string()),
            source_connector: Some(namespace.to_string()),
            status,
            set_aside_reason: reason,
            first_seen: at,
            last_seen: at,
        }));
        true
    }

    fn suggest(&mut self, a: CustomerId, b: CustomerId, rule: &str, evidence: Value, at: DateTime<Utc>) {
        let (x, y) = if a.0 <= b.0 { (a.0, b.0) } else { (b.0, a.0) };
        if !self.suggested.insert((x, y)) {
            return;
        }
        self.suggestions.push(merge_candidate::ActiveModel {
            id: Set(Uuid::now_v7()),
            customer_a: Set(x),
            customer_b: Set(y),
            rule: Set(rule.to_string()),
            evidence: Set(evidence),
            status: Set("pending".into()),
            created_at: Set(at),
            decided_at: Set(None),
            decided_by: Set(None),
        });
    }
}
