//! Bulk ingestion: many observations resolved in one transaction with a handful of
//! statements instead of a dozen per record.
//!
//! The batch's keys are looked up once, with the source records of every customer found;
//! the rules then run in memory against those customers, exactly as [`Store::ingest_in`]
//! would run them one record at a time. Creates and attaches are buffered and written with
//! multi-row statements of a few fixed sizes; golden records are computed in memory from
//! each touched customer's source records, so the name the rules compare moves with every
//! record, and written once when the batch ends. A record that merges customers writes the
//! buffer, absorbs the others into the survivor (the same ledger, moves and consents as an
//! online merge) and then attaches to the survivor. So the result equals ingesting the
//! records one by one, in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, Statement};
use serde_json::Value;
use uuid::Uuid;

use super::customers::{created_at, insert_identities, insert_tags, new_source_record, now};
use super::entities::{customer, customer_tag, identity, merge_candidate, source_record};
use super::merges::insert_candidates;
use super::rows::insert_rows;
use super::shapes::{padded_in, rows_per_statement, slices_of};
use super::{ph, IngestOutcome, Store, StoreError, StoreResult};
use crate::identity::keys::Extracted;
use crate::identity::normalize::PersonName;
use crate::identity::rules::{self, CustomerView, HeldKey, KeyStatus, Target};
use crate::identity::survivorship::golden_record_with;
use crate::identity::{IdentityKey, IdentityKind, KeyExtractor, Observation, RejectedIdentifier};
use crate::ids::CustomerId;

/// One record of a bulk batch, with its keys already extracted (extraction is pure and
/// can run on another thread while the previous batch is written).
#[derive(Debug)]
pub struct BulkItem {
    pub obs: Observation,
    pub extracted: Extracted,
    pub region: Option<String>,
}

impl BulkItem {
    pub fn new(extractor: &KeyExtractor, obs: Observation, region: Option<String>) -> Self {
        let extracted = extractor.extract(&obs, region.as_deref());
        Self { obs, extracted, region }
    }
}

/// Writes waiting for the next flush.
#[derive(Default)]
struct Pending {
    /// Customers created in this batch and not written yet, with their creation time: their
    /// row is written once, with its golden fields, when their identities are.
    created: BTreeMap<CustomerId, DateTime<Utc>>,
    /// One row per (customer, key), in first-write order; later writes fold in.
    identities: Vec<identity::Model>,
    identity_index: HashMap<(CustomerId, IdentityKey), usize>,
    records: Vec<source_record::ActiveModel>,
    suggestions: Vec<merge_candidate::ActiveModel>,
    suggested: HashSet<(Uuid, Uuid)>,
    /// Customers whose golden record must be recomputed.
    touched: BTreeSet<CustomerId>,
    /// Every source record of each customer touched in this batch, oldest first: the
    /// golden record (and the name the rules compare) is computed from it in memory.
    history: HashMap<CustomerId, Vec<Observation>>,
}

/// Customers created in the batch and not written yet, for [`Store::upsert_golden`]:
/// their creation times and the pending identity rows (oldest first), which hold every
/// identity they have.
#[derive(Clone, Copy)]
struct Unwritten<'a> {
    created: &'a BTreeMap<CustomerId, DateTime<Utc>>,
    identities: &'a [identity::Model],
}

/// The customers met so far in the batch, as the rules see them.
#[derive(Default)]
struct Known {
    views: HashMap<CustomerId, CustomerView>,
    /// Every customer holding a key (active or set aside). A key of the batch with no
    /// entry has no holder.
    holders: HashMap<IdentityKey, Vec<CustomerId>>,
}

impl Known {
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
    pub async fn ingest_bulk(&self, extractor: &KeyExtractor, items: &[BulkItem]) -> StoreResult<Vec<IngestOutcome>> {
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
        items: &[BulkItem],
    ) -> StoreResult<Vec<IngestOutcome>> {
        self.bulk_in(&tx.txn, extractor, items).await
    }

    async fn bulk_in(
        &self,
        txn: &DatabaseTransaction,
        extractor: &KeyExtractor,
        items: &[BulkItem],
    ) -> StoreResult<Vec<IngestOutcome>> {
        let at = now();
        let started = std::time::Instant::now();
        let mut merges = 0usize;
        let mut all_keys: Vec<&IdentityKey> =
            items.iter().flat_map(|i| i.extracted.keys.iter().map(|k| &k.key)).collect();
        all_keys.sort_unstable();
        all_keys.dedup();
        let mut looked_up: HashSet<IdentityKey> = all_keys.iter().map(|k| (*k).clone()).collect();
        let mut known = Known::default();
        let mut pending = Pending::default();
        self.load_holders(txn, &all_keys, &mut known, &mut pending.history).await?;
        let looked_up_in = started.elapsed();

        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let obs = &item.obs;
            let mut extracted = item.extracted.clone();
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
                extractor.resolve_deferred(&mut extracted, obs, item.region.as_deref(), &regions);
                let fresh: Vec<&IdentityKey> =
                    extracted.keys.iter().map(|k| &k.key).filter(|k| !looked_up.contains(*k)).collect();
                if !fresh.is_empty() {
                    // Nothing in this batch wrote these keys, so the database knows every holder.
                    self.load_holders(txn, &fresh, &mut known, &mut pending.history).await?;
                    looked_up.extend(fresh.into_iter().cloned());
                }
            }
            let record_keys: Vec<IdentityKey> = extracted.keys.iter().map(|k| k.key.clone()).collect();
            let mut holder_ids = known.holders_of(&record_keys);
            holder_ids.sort_unstable();
            let views: Vec<CustomerView> = holder_ids.iter().filter_map(|c| known.views.get(c).cloned()).collect();
            let blocked = if holder_ids.len() >= 2 {
                let raw: Vec<Uuid> = holder_ids.iter().map(|c| c.0).collect();
                self.blocked_pairs(txn, &raw).await?
            } else {
                Default::default()
            };
            let record_name = PersonName::parse(
                obs.profile.given_name.as_deref(),
                obs.profile.family_name.as_deref(),
                obs.profile.full_name.as_deref(),
            )
            .ok();
            let plan = rules::plan(extractor.rules(), &record_keys, record_name.as_ref(), &views, &blocked, None);

            let (customer_id, created, merged) = match plan.target {
                Target::Create => {
                    let id = CustomerId::new();
                    pending.created.insert(id, created_at(obs, at));
                    known.views.insert(id, CustomerView { id, name: None, identities: vec![] });
                    pending.history.insert(id, vec![]);
                    (id, true, vec![])
                }
                Target::Attach(id) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = pending.history.entry(id) {
                        slot.insert(self.source_observations(txn, id).await?);
                    }
                    (id, false, vec![])
                }
                Target::Merge { survivor, absorbed } => {
                    // Absorb on written state, then carry on as an attach to the survivor.
                    merges += 1;
                    self.write_rows(txn, &mut pending, at).await?;
                    let early: Vec<CustomerId> =
                        absorbed.iter().filter(|a| pending.touched.remove(*a)).copied().collect();
                    self.upsert_golden(txn, &early, &pending.history, None, at).await?;
                    let evidence = serde_json::to_value(&plan.evidence).unwrap_or(Value::Null);
                    for a in &absorbed {
                        self.absorb(txn, survivor, *a, "shared_identifier", evidence.clone(), "system", None, at)
                            .await?;
                        known.forget(*a);
                        pending.history.remove(a);
                    }
                    known.forget(survivor);
                    for view in self.customer_views(txn, &[survivor.0]).await? {
                        known.index(view);
                    }
                    pending.history.insert(survivor, self.source_observations(txn, survivor).await?);
                    (survivor, false, absorbed)
                }
            };
            let mut rejected = extracted.rejected.clone();
            let view = known.views.get_mut(&customer_id).expect("the target customer is known");
            for k in &extracted.keys {
                let Some((_, status)) = plan.keys.iter().find(|(pk, _)| pk == &k.key) else { continue };
                if let KeyStatus::SetAside(reason) = status {
                    rejected.push(RejectedIdentifier { kind: k.key.kind, raw: k.raw.clone(), reason: reason.clone() });
                }
                pending.write_identity(customer_id, k.key.clone(), &k.raw, status, &obs.source.namespace, at);
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
            let history = pending.history.get_mut(&customer_id).expect("history loaded above");
            history.push(obs.clone());
            let golden = golden_record_with(&self.survivorship, history);
            view.name = PersonName::parse(
                golden.given_name.as_deref(),
                golden.family_name.as_deref(),
                golden.full_name.as_deref(),
            )
            .ok();
            for s in &plan.suggestions {
                if s.other != customer_id {
                    let evidence = serde_json::to_value(&s.evidence).unwrap_or(Value::Null);
                    pending.suggest(customer_id, s.other, &s.rule, evidence, at);
                }
            }
            pending.records.push(new_source_record(customer_id, obs, at)?);
            pending.touched.insert(customer_id);
            out.push(IngestOutcome { customer_id, created, merged, rejected });
        }
        let resolved_in = started.elapsed();
        self.flush(txn, &mut pending, at).await?;
        tracing::debug!(
            records = items.len(),
            merges,
            resolve_ms = resolved_in.as_millis() as u64,
            lookup_ms = looked_up_in.as_millis() as u64,
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
        keys: &[&IdentityKey],
        known: &mut Known,
        history: &mut HashMap<CustomerId, Vec<Observation>>,
    ) -> StoreResult<()> {
        self.lock_key_set(txn, keys).await?;
        let held = self.holders_of_keys(txn, keys).await?;
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
        for view in self.customer_views(txn, &live).await? {
            known.index(view);
        }
        let unread: Vec<Uuid> = live.into_iter().filter(|id| !history.contains_key(&CustomerId(*id))).collect();
        history.extend(self.source_observations_of(txn, &unread).await?);
        Ok(())
    }

    /// Take every key's advisory lock, in one sorted statement (PostgreSQL; SQLite's
    /// writer lock already serialises writes).
    pub(crate) async fn lock_key_set(&self, txn: &DatabaseTransaction, keys: &[&IdentityKey]) -> StoreResult<()> {
        if !self.is_postgres() || keys.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<i64> = keys.iter().map(|k| super::customers::lock_id(k)).collect();
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

    /// Identity rows (any status) holding any of `keys`.
    async fn holders_of_keys(
        &self,
        txn: &DatabaseTransaction,
        keys: &[&IdentityKey],
    ) -> StoreResult<Vec<identity::Model>> {
        let b = self.backend();
        let mut rows = Vec::new();
        for chunk in slices_of(keys, rows_per_statement(3)) {
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3);
            let mut tuples = Vec::with_capacity(chunk.len());
            for (i, k) in chunk.iter().enumerate() {
                tuples.push(format!("({}, {}, {})", ph(b, 3 * i + 1), ph(b, 3 * i + 2), ph(b, 3 * i + 3)));
                values.push(k.kind.as_str().into());
                values.push(k.namespace.as_str().into());
                values.push(k.value.as_str().into());
            }
            let sql = format!(
                "SELECT i.id, i.customer_id, i.kind, i.namespace, i.value, i.raw, i.source_connector, i.status, \
                        i.set_aside_reason, i.first_seen, i.last_seen \
                 FROM (VALUES {}) AS v JOIN identities i \
                   ON i.kind = v.column1 AND i.namespace = v.column2 AND i.value = v.column3",
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

    /// Write everything pending, then recompute the golden record of each touched customer.
    async fn flush(&self, txn: &DatabaseTransaction, pending: &mut Pending, at: DateTime<Utc>) -> StoreResult<()> {
        self.write_rows(txn, pending, at).await?;
        let touched: Vec<CustomerId> = std::mem::take(&mut pending.touched).into_iter().collect();
        for chunk in slices_of(&touched, rows_per_statement(11)) {
            self.upsert_golden(txn, chunk, &pending.history, None, at).await?;
        }
        Ok(())
    }

    /// Write the pending rows. Touched customers and their history stay: golden records
    /// are computed from the history once, when the batch ends (tags are a union, so no
    /// intermediate golden record is missed).
    async fn write_rows(&self, txn: &DatabaseTransaction, pending: &mut Pending, at: DateTime<Utc>) -> StoreResult<()> {
        let p = Pending {
            history: std::mem::take(&mut pending.history),
            touched: std::mem::take(&mut pending.touched),
            ..Default::default()
        };
        let p = std::mem::replace(pending, p);
        // New customers first (identities refer to them), golden fields included; their
        // primary email and phone come from their identities, all of them still pending.
        let new: Vec<CustomerId> = p.created.keys().copied().collect();
        for chunk in slices_of(&new, rows_per_statement(11)) {
            self.upsert_golden(
                txn,
                chunk,
                &pending.history,
                Some(Unwritten { created: &p.created, identities: &p.identities }),
                at,
            )
            .await?;
        }
        for id in &new {
            pending.touched.remove(id);
        }
        let (active, aside): (Vec<identity::Model>, Vec<identity::Model>) =
            p.identities.into_iter().partition(|i| i.status == "active");
        insert_identities(txn, active.into_iter().map(Into::into).collect(), true).await?;
        insert_identities(txn, aside.into_iter().map(Into::into).collect(), false).await?;
        insert_rows(txn, p.records, "").await?;
        insert_candidates(txn, p.suggestions).await?;
        Ok(())
    }

    /// Write the golden records of `ids`, computed from their complete `history`, with one
    /// upsert for all. Existing customers are updated; their primary email and phone (the
    /// most recent active identities) are read from the database; customers not written yet
    /// are inserted, with what `new` holds about them.
    async fn upsert_golden(
        &self,
        txn: &DatabaseTransaction,
        ids: &[CustomerId],
        history: &HashMap<CustomerId, Vec<Observation>>,
        new: Option<Unwritten<'_>>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        if ids.is_empty() {
            return Ok(());
        }
        let read: Vec<identity::Model>;
        // Newest first, as the query orders them (all pending rows share `at`).
        let newest_first: Vec<&identity::Model> = match new {
            Some(u) => u.identities.iter().rev().filter(|i| i.status == "active").collect(),
            None => {
                let raw: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
                read = identity::Entity::find()
                    .filter(identity::Column::CustomerId.is_in(padded_in(&raw, 256).concat()))
                    .filter(identity::Column::Status.eq("active"))
                    .order_by_desc(identity::Column::LastSeen)
                    .order_by_desc(identity::Column::Id)
                    .all(txn)
                    .await?;
                read.iter().collect()
            }
        };
        let mut primaries: HashMap<(Uuid, &str), String> = HashMap::new();
        for i in newest_first {
            let kind = i.kind.as_str();
            if kind != IdentityKind::Email.as_str() && kind != IdentityKind::Phone.as_str() {
                continue;
            }
            primaries.entry((i.customer_id, kind)).or_insert_with(|| {
                if kind == IdentityKind::Email.as_str() {
                    i.raw.clone().unwrap_or_else(|| i.value.clone()).trim().to_lowercase()
                } else {
                    i.value.clone()
                }
            });
        }
        let created = new.map(|u| u.created);

        // An upsert on the primary key rather than UPDATE … FROM (VALUES …): SQLite may plan
        // the latter as a scan of every customer.
        let b = self.backend();
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(ids.len() * 11);
        let mut tuples = Vec::with_capacity(ids.len());
        let mut tags: Vec<customer_tag::ActiveModel> = Vec::new();
        for id in ids {
            let golden = golden_record_with(&self.survivorship, history.get(id).map(Vec::as_slice).unwrap_or(&[]));
            let mut traits = golden.traits.clone();
            if let Some(d) = golden.birth_date {
                traits.insert("birthDate".into(), Value::String(d.to_string()));
            }
            let n = values.len();
            tuples.push(format!("({})", (1..=11).map(|i| ph(b, n + i)).collect::<Vec<_>>().join(", ")));
            values.push(id.0.into());
            values.push(golden.given_name.clone().into());
            values.push(golden.family_name.clone().into());
            values.push(golden.full_name.clone().into());
            values.push(primaries.get(&(id.0, IdentityKind::Email.as_str())).cloned().into());
            values.push(primaries.get(&(id.0, IdentityKind::Phone.as_str())).cloned().into());
            values.push(serde_json::to_value(&golden.addresses).unwrap_or(Value::Array(vec![])).into());
            values.push(Value::Object(traits).into());
            // Version and creation time count only for a new row: a recompute after creation
            // leaves a new customer at version 1.
            values.push(1i64.into());
            values.push(created.and_then(|c| c.get(id)).copied().unwrap_or(at).into());
            values.push(at.into());
            tags.extend(golden.tags.iter().map(|t| customer_tag::ActiveModel {
                customer_id: Set(id.0),
                tag: Set(t.clone()),
                created_at: Set(at),
            }));
        }
        let sql = format!(
            "INSERT INTO customers (id, given_name, family_name, full_name, primary_email, primary_phone, addresses, \
               traits, version, created_at, updated_at) VALUES {} \
             ON CONFLICT (id) DO UPDATE SET given_name = excluded.given_name, family_name = excluded.family_name, \
               full_name = excluded.full_name, primary_email = excluded.primary_email, \
               primary_phone = excluded.primary_phone, addresses = excluded.addresses, traits = excluded.traits, \
               version = customers.version + 1, updated_at = excluded.updated_at",
            tuples.join(", ")
        );
        txn.execute(Statement::from_sql_and_values(b, sql, values)).await?;
        insert_tags(txn, tags).await?;
        Ok(())
    }
}

impl Pending {
    /// Fold an identity write into the pending row for (customer, key), as the
    /// one-record upsert would: an active write claims the key and takes the latest raw
    /// form; a set-aside write only marks it seen.
    fn write_identity(
        &mut self,
        customer: CustomerId,
        key: IdentityKey,
        raw: &str,
        status: &KeyStatus,
        namespace: &str,
        at: DateTime<Utc>,
    ) {
        let slot = (customer, key);
        if let Some(&i) = self.identity_index.get(&slot) {
            if let KeyStatus::Active = status {
                let row = &mut self.identities[i];
                row.raw = Some(raw.to_string());
                row.status = "active".into();
                row.set_aside_reason = None;
            }
            return;
        }
        let (status, reason) = match status {
            KeyStatus::Active => ("active".to_string(), None),
            KeyStatus::SetAside(r) => ("set_aside".to_string(), Some(r.clone())),
        };
        self.identity_index.insert(slot.clone(), self.identities.len());
        self.identities.push(identity::Model {
            id: Uuid::now_v7(),
            customer_id: customer.0,
            kind: slot.1.kind.as_str().to_string(),
            namespace: slot.1.namespace,
            value: slot.1.value,
            raw: Some(raw.to_string()),
            source_connector: Some(namespace.to_string()),
            status,
            set_aside_reason: reason,
            first_seen: at,
            last_seen: at,
        });
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
