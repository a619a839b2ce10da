//! Customers, identities, timeline and orders: ingestion (resolve + persist) and reads.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, LikeExpr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, FromQueryResult, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::Value;
use uuid::Uuid;

use super::entities::{customer, customer_tag, event, identity, order, source_record};
use super::merges::MergeFacts;
use super::rows::insert_rows;
use super::{ph, Cursor, Page, PageRequest, Store, StoreError, StoreResult};
use crate::identity::keys::{Extracted, ParsedIdentity};
use crate::identity::normalize::PersonName;
use crate::identity::rules::{self, KeyStatus, Target};
use crate::identity::survivorship::golden_record_with;
use crate::identity::{IdentityKey, IdentityKind, KeyExtractor, Observation, RejectedIdentifier};
use crate::ids::CustomerId;

/// What ingesting one observation did.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub customer_id: CustomerId,
    pub created: bool,
    /// Customers absorbed into `customer_id` by this observation.
    pub merged: Vec<CustomerId>,
    pub rejected: Vec<RejectedIdentifier>,
}

/// Filters on the customer list. Email and phone are already normalised keys.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    pub search: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub tag: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerSort {
    CreatedAt,
    UpdatedAt,
}

/// A manual edit of a customer's descriptive fields.
#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub traits: serde_json::Map<String, Value>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
}

/// A new timeline event.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub customer_id: CustomerId,
    pub kind: String,
    pub source: String,
    pub occurred_at: DateTime<Utc>,
    pub properties: Value,
}

/// Timestamps are stored to the microsecond so both backends compare them alike.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Identity rows (any status) holding any of `keys`, found by their `key_hash`. Each key is
/// asked for twice, active and not, so that each arm can use its partial index
/// (`ux_identities_active_key_hash`, `ix_identities_set_aside_key_hash`): no index covers both.
pub(crate) fn key_condition(keys: &[&IdentityKey]) -> Condition {
    keys.iter().fold(Condition::any(), |c, k| {
        let key = || Condition::all().add(identity::Column::KeyHash.eq(k.hash()));
        c.add(key().add(identity::Column::Status.eq("active"))).add(key().add(identity::Column::Status.ne("active")))
    })
}

/// Identity keys share this many advisory locks (PostgreSQL), a key's lock chosen by its
/// hash. A lock per key made a bulk batch of 5,000 records hold some 12,000 locks, and
/// PostgreSQL's lock table holds about 64 per connection for the whole server
/// (`max_locks_per_transaction`): two imports at once, or an import beside a busy inbox,
/// failed with "out of shared memory". Striped, every identity writer together holds at
/// most this many (each lock is exclusive); a batch of thousands of keys takes nearly all
/// of them, so writers wait for it to commit, as SQLite's writer lock makes them wait.
/// Two writers whose keys share a stripe wait for each other, as if they shared a key.
const KEY_LOCK_STRIPES: u64 = 1024;

/// The first key-lock id: the stripes sit apart from the other advisory locks (the audit
/// chain's).
const KEY_LOCK_BASE: i64 = 0x4A55_4E43_0000_0000;

/// The advisory lock id of a key's stripe (by the first 8 bytes of its `key_hash`).
pub(crate) fn lock_id(hash: &Uuid) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash.as_bytes()[..8]);
    KEY_LOCK_BASE + (u64::from_be_bytes(b) % KEY_LOCK_STRIPES) as i64
}

/// When a customer first seen in `obs` at `at` was created: the record's own time if it is
/// earlier.
pub(crate) fn created_at(obs: &Observation, at: DateTime<Utc>) -> DateTime<Utc> {
    obs.occurred_at.map(|t| t.trunc_subsecs(6)).filter(|t| *t < at).unwrap_or(at)
}

/// A new, empty customer row; its golden fields come from the recompute.
pub(crate) fn new_customer(id: CustomerId, obs: &Observation, at: DateTime<Utc>) -> customer::ActiveModel {
    customer::ActiveModel {
        id: Set(id.0),
        given_name: Set(None),
        family_name: Set(None),
        full_name: Set(None),
        primary_email: Set(None),
        primary_phone: Set(None),
        addresses: Set(Value::Array(vec![])),
        traits: Set(Value::Object(Default::default())),
        lifecycle_stage: Set(None),
        merged_into: Set(None),
        version: Set(0),
        created_at: Set(created_at(obs, at)),
        updated_at: Set(at),
    }
}

/// Where a source record stands in the order a recompute reads a customer's records.
pub(crate) type RecordOrder = (DateTime<Utc>, Uuid);

/// The source record that stores `obs` verbatim on `customer_id`.
pub(crate) fn new_source_record(
    customer_id: CustomerId,
    obs: &Observation,
    at: DateTime<Utc>,
) -> StoreResult<source_record::ActiveModel> {
    let mut row = source_record_row(customer_id, obs, at);
    row.payload = Set(serde_json::to_value(obs).map_err(|e| StoreError::Corrupt(e.to_string()))?);
    Ok(row)
}

/// [`new_source_record`] with the payload left unset, for a writer that binds it as JSON
/// text ([`super::rows::insert_statements_with_json_text`]).
pub(crate) fn source_record_row(
    customer_id: CustomerId,
    obs: &Observation,
    at: DateTime<Utc>,
) -> source_record::ActiveModel {
    source_record::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(Some(customer_id.0)),
        connector_id: Set(obs.source.connector_id.map(|c| c.0)),
        source: Set(obs.source.source.clone()),
        external_id: Set(obs.record_id.clone()),
        record_kind: Set(obs.record_kind.clone()),
        payload: sea_orm::ActiveValue::NotSet,
        occurred_at: Set(obs.occurred_at.map(|t| t.trunc_subsecs(6))),
        received_at: Set(at),
        inbox_id: Set(obs.source.inbox_id),
    }
}

/// Delete the rows of `customers` that a bulk load's deferred references would not
/// cascade while they are away ([`Store::defer_references`]): source records, identities
/// and tags. Every path that deletes customers calls this first.
pub(crate) async fn delete_attached_rows(txn: &DatabaseTransaction, customers: &[Uuid]) -> StoreResult<()> {
    source_record::Entity::delete_many()
        .filter(source_record::Column::CustomerId.is_in(customers.iter().copied()))
        .exec(txn)
        .await?;
    identity::Entity::delete_many()
        .filter(identity::Column::CustomerId.is_in(customers.iter().copied()))
        .exec(txn)
        .await?;
    customer_tag::Entity::delete_many()
        .filter(customer_tag::Column::CustomerId.is_in(customers.iter().copied()))
        .exec(txn)
        .await?;
    Ok(())
}

impl Store {
    /// Resolve and persist one observation, retrying transient conflicts.
    #[tracing::instrument(skip_all, fields(source = %obs.source.source))]
    pub async fn ingest(
        &self,
        extractor: &KeyExtractor,
        obs: &Observation,
        region: Option<&str>,
    ) -> StoreResult<IngestOutcome> {
        let mut attempt = 0;
        loop {
            let tx = self.write().await?;
            let result = self.ingest_in(&tx.txn, extractor, obs, region, None).await;
            let result = match result {
                Ok(outcome) => tx.commit().await.map(|_| outcome),
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

    /// Attach an observation to a known customer (manual edits), then recompute it.
    pub async fn ingest_into(
        &self,
        extractor: &KeyExtractor,
        customer: CustomerId,
        obs: &Observation,
    ) -> StoreResult<IngestOutcome> {
        let tx = self.write().await?;
        let outcome = self.ingest_in(&tx.txn, extractor, obs, None, Some(customer)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn lock_keys(&self, txn: &DatabaseTransaction, keys: &[ParsedIdentity]) -> StoreResult<()> {
        let hashes: Vec<Uuid> = keys.iter().map(|k| k.key.hash()).collect();
        self.lock_key_set(txn, &hashes).await
    }

    async fn holders(&self, txn: &DatabaseTransaction, keys: &[ParsedIdentity]) -> StoreResult<Vec<identity::Model>> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let refs: Vec<&IdentityKey> = keys.iter().map(|k| &k.key).collect();
        Ok(identity::Entity::find().filter(key_condition(&refs)).all(txn).await?)
    }

    /// Lock customer rows (PostgreSQL) and follow `merged_into` to the live survivor.
    pub(crate) async fn live_customer(&self, txn: &DatabaseTransaction, id: Uuid) -> StoreResult<customer::Model> {
        let mut current = id;
        for _ in 0..32 {
            let mut q = customer::Entity::find_by_id(current);
            if self.is_postgres() {
                q = q.lock_exclusive();
            }
            let row = q.one(txn).await?.ok_or(StoreError::NotFound)?;
            match row.merged_into {
                Some(next) => current = next,
                None => return Ok(row),
            }
        }
        Err(StoreError::Corrupt("merge chain too long".into()))
    }

    pub(crate) async fn ingest_in(
        &self,
        txn: &DatabaseTransaction,
        extractor: &KeyExtractor,
        obs: &Observation,
        region: Option<&str>,
        target: Option<CustomerId>,
    ) -> StoreResult<IngestOutcome> {
        let at = now();
        let mut extracted: Extracted = extractor.extract(obs, region);
        self.lock_keys(txn, &extracted.keys).await?;
        let mut held = self.holders(txn, &extracted.keys).await?;
        if !extracted.deferred_phones.is_empty() {
            let regions = customer_regions(extractor, &held, txn).await?;
            extractor.resolve_deferred(&mut extracted, obs, region, &regions);
            self.lock_keys(txn, &extracted.keys).await?;
            held = self.holders(txn, &extracted.keys).await?;
        }

        // Lock and follow merges so a concurrent merge cannot leave us on an absorbed row.
        let mut live_ids: Vec<Uuid> = Vec::new();
        for h in &held {
            let live = self.live_customer(txn, h.customer_id).await?;
            if !live_ids.contains(&live.id) {
                live_ids.push(live.id);
            }
        }
        let target_live = match target {
            Some(t) => {
                let live = self.live_customer(txn, t.0).await?;
                if !live_ids.contains(&live.id) {
                    live_ids.push(live.id);
                }
                Some(CustomerId(live.id))
            }
            None => None,
        };
        let views = self.customer_views(txn, &live_ids).await?;
        let blocked = self.blocked_pairs(txn, &live_ids).await?;
        let record_name = PersonName::parse(
            obs.profile.given_name.as_deref(),
            obs.profile.family_name.as_deref(),
            obs.profile.full_name.as_deref(),
        )
        .ok();
        let record_keys: Vec<IdentityKey> = extracted.keys.iter().map(|k| k.key.clone()).collect();
        let plan = rules::plan(extractor.rules(), &record_keys, record_name.as_ref(), &views, &blocked, target_live);

        let (customer_id, created, merged) = match &plan.target {
            Target::Create => {
                let id = CustomerId::new();
                customer::Entity::insert(new_customer(id, obs, at)).exec_without_returning(txn).await?;
                (id, true, vec![])
            }
            Target::Attach(id) => (*id, false, vec![]),
            Target::Merge { survivor, absorbed } => {
                let evidence = serde_json::to_value(&plan.evidence).unwrap_or(Value::Null);
                for a in absorbed {
                    self.absorb(txn, MergeFacts::automatic(*survivor, *a, evidence.clone(), at)).await?;
                }
                (*survivor, false, absorbed.clone())
            }
        };

        let mut rejected = extracted.rejected;
        let statuses: Vec<(&ParsedIdentity, &KeyStatus)> = extracted
            .keys
            .iter()
            .filter_map(|k| plan.keys.iter().find(|(pk, _)| pk == &k.key).map(|(_, s)| (k, s)))
            .collect();
        for (k, s) in &statuses {
            if let KeyStatus::SetAside(reason) = s {
                rejected.push(RejectedIdentifier { kind: k.key.kind, raw: k.raw.clone(), reason: reason.clone() });
            }
        }
        self.upsert_identities(txn, customer_id, &statuses, obs, at).await?;
        for s in &plan.suggestions {
            if s.other != customer_id {
                let evidence = serde_json::to_value(&s.evidence).unwrap_or(Value::Null);
                self.suggest_pair(txn, customer_id, s.other, &s.rule, evidence, at).await?;
            }
        }
        source_record::Entity::insert(new_source_record(customer_id, obs, at)?).exec_without_returning(txn).await?;
        self.recompute(txn, customer_id, at).await?;
        Ok(IngestOutcome { customer_id, created, merged, rejected })
    }

    /// Store the record's keys on `customer_id`: active ones claim the key (the partial
    /// unique index refuses a second active holder, which a retry then resolves), set-aside
    /// ones are kept on this customer with their reason.
    async fn upsert_identities(
        &self,
        txn: &DatabaseTransaction,
        customer_id: CustomerId,
        keys: &[(&ParsedIdentity, &KeyStatus)],
        obs: &Observation,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let model = |k: &ParsedIdentity, status: &KeyStatus| identity::ActiveModel {
            id: Set(Uuid::now_v7()),
            customer_id: Set(customer_id.0),
            kind: Set(k.key.kind.as_str().to_string()),
            namespace: Set(k.key.namespace.clone()),
            value: Set(k.key.value.clone()),
            key_hash: Set(k.key.hash()),
            raw: Set(Some(k.raw.clone())),
            source_connector: Set(Some(obs.source.namespace.clone())),
            status: Set(match status {
                KeyStatus::Active => "active".into(),
                KeyStatus::SetAside(_) => "set_aside".into(),
            }),
            set_aside_reason: Set(match status {
                KeyStatus::Active => None,
                KeyStatus::SetAside(r) => Some(r.clone()),
            }),
            first_seen: Set(at),
            last_seen: Set(at),
        };
        let active: Vec<identity::ActiveModel> =
            keys.iter().filter(|(_, s)| matches!(s, KeyStatus::Active)).map(|(k, s)| model(k, s)).collect();
        let aside: Vec<identity::ActiveModel> =
            keys.iter().filter(|(_, s)| !matches!(s, KeyStatus::Active)).map(|(k, s)| model(k, s)).collect();
        insert_identities(txn, active, true).await?;
        insert_identities(txn, aside, false).await
    }

    pub(crate) async fn add_tags<'a>(
        &self,
        txn: &DatabaseTransaction,
        customer_id: CustomerId,
        tags: impl Iterator<Item = &'a str>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let models: Vec<customer_tag::ActiveModel> = tags
            .map(|t| customer_tag::ActiveModel {
                customer_id: Set(customer_id.0),
                tag: Set(t.to_string()),
                created_at: Set(at),
            })
            .collect();
        insert_tags(txn, models).await
    }

    /// A customer's source records as observations, in the order a recompute reads them.
    pub(crate) async fn source_observations(
        &self,
        txn: &DatabaseTransaction,
        id: CustomerId,
    ) -> StoreResult<Vec<Observation>> {
        let rows = self.source_histories_of(txn, &[id.0]).await?.remove(&id).unwrap_or_default();
        Ok(rows.into_iter().map(|(_, obs)| obs).collect())
    }

    /// Each customer's source records as observations with their place in the order a
    /// recompute reads them: `(received_at, id)`, oldest first.
    pub(crate) async fn source_histories_of(
        &self,
        txn: &DatabaseTransaction,
        ids: &[Uuid],
    ) -> StoreResult<HashMap<CustomerId, Vec<(RecordOrder, Observation)>>> {
        let mut out: HashMap<CustomerId, Vec<(RecordOrder, Observation)>> =
            ids.iter().map(|id| (CustomerId(*id), vec![])).collect();
        if ids.is_empty() {
            return Ok(out);
        }
        // The payload is read as text and parsed straight into an observation: through the
        // model it became a `serde_json::Value` tree first, built only to be converted.
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            id: Uuid,
            customer_id: Option<Uuid>,
            received_at: DateTime<Utc>,
            payload: String,
        }
        let payload_text = if self.is_postgres() { "CAST(payload AS text)" } else { "payload" };
        for chunk in super::shapes::padded_in(ids, 256) {
            let rows = source_record::Entity::find()
                .select_only()
                .columns([
                    source_record::Column::Id,
                    source_record::Column::CustomerId,
                    source_record::Column::ReceivedAt,
                ])
                .column_as(Expr::cust(payload_text), "payload")
                .filter(source_record::Column::CustomerId.is_in(chunk))
                .order_by_asc(source_record::Column::ReceivedAt)
                .order_by_asc(source_record::Column::Id)
                .into_model::<Row>()
                .all(txn)
                .await?;
            for r in rows {
                let (Some(c), Ok(obs)) = (r.customer_id, serde_json::from_str(&r.payload)) else { continue };
                out.entry(CustomerId(c)).or_default().push(((r.received_at, r.id), obs));
            }
        }
        Ok(out)
    }

    /// Recompute the golden record of `customer_id` from its source records and identities.
    pub(crate) async fn recompute(
        &self,
        txn: &DatabaseTransaction,
        customer_id: CustomerId,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let observations = self.source_observations(txn, customer_id).await?;
        let golden = golden_record_with(&self.survivorship, &observations);
        let idents = identity::Entity::find()
            .filter(identity::Column::CustomerId.eq(customer_id.0))
            .filter(identity::Column::Status.eq("active"))
            .order_by_desc(identity::Column::LastSeen)
            .order_by_desc(identity::Column::Id)
            .all(txn)
            .await?;
        let primary = |kind: IdentityKind| {
            idents.iter().find(|i| i.kind == kind.as_str()).map(|i| match kind {
                IdentityKind::Email => i.raw.clone().unwrap_or_else(|| i.value.clone()).trim().to_lowercase(),
                _ => i.value.clone(),
            })
        };
        let mut traits = golden.traits.clone();
        if let Some(b) = golden.birth_date {
            traits.insert("birthDate".into(), Value::String(b.to_string()));
        }
        customer::Entity::update_many()
            .col_expr(customer::Column::GivenName, Expr::value(golden.given_name.clone()))
            .col_expr(customer::Column::FamilyName, Expr::value(golden.family_name.clone()))
            .col_expr(customer::Column::FullName, Expr::value(golden.full_name.clone()))
            .col_expr(customer::Column::PrimaryEmail, Expr::value(primary(IdentityKind::Email)))
            .col_expr(customer::Column::PrimaryPhone, Expr::value(primary(IdentityKind::Phone)))
            .col_expr(
                customer::Column::Addresses,
                Expr::value(serde_json::to_value(&golden.addresses).unwrap_or(Value::Array(vec![]))),
            )
            .col_expr(customer::Column::Traits, Expr::value(Value::Object(traits)))
            .col_expr(customer::Column::Version, Expr::col(customer::Column::Version).add(1))
            .col_expr(customer::Column::UpdatedAt, Expr::value(at))
            .filter(customer::Column::Id.eq(customer_id.0))
            .exec(txn)
            .await?;
        self.add_tags(txn, customer_id, golden.tags.iter().map(String::as_str), at).await?;
        Ok(())
    }

    /// A customer by id; an absorbed id resolves to its survivor, reported as the second value.
    pub async fn customer(&self, id: CustomerId) -> StoreResult<Option<(customer::Model, Option<CustomerId>)>> {
        let mut current = id.0;
        for _ in 0..32 {
            let Some(row) = customer::Entity::find_by_id(current).one(self.conn()).await? else {
                return Ok(None);
            };
            match row.merged_into {
                Some(next) => current = next,
                None => return Ok(Some((row, (current != id.0).then_some(id)))),
            }
        }
        Err(StoreError::Corrupt("merge chain too long".into()))
    }

    /// The live customer holding `key`.
    pub async fn customer_by_identity(&self, key: &IdentityKey) -> StoreResult<Option<customer::Model>> {
        let Some(row) = identity::Entity::find().filter(key_condition(&[key])).one(self.conn()).await? else {
            return Ok(None);
        };
        Ok(self.customer(CustomerId(row.customer_id)).await?.map(|(c, _)| c))
    }

    fn filter_condition(&self, f: &CustomerFilter) -> Condition {
        let mut cond = Condition::all().add(customer::Column::MergedInto.is_null());
        // Emails and phones are global keys (empty namespace).
        let ident_sub = |kind: IdentityKind, value: &str| {
            let key = IdentityKey { kind, namespace: String::new(), value: value.to_string() };
            Query::select()
                .column(identity::Column::CustomerId)
                .from(identity::Entity)
                .cond_where(key_condition(&[&key]))
                .to_owned()
        };
        if let Some(email) = &f.email {
            cond = cond.add(customer::Column::Id.in_subquery(ident_sub(IdentityKind::Email, email)));
        }
        if let Some(phone) = &f.phone {
            cond = cond.add(customer::Column::Id.in_subquery(ident_sub(IdentityKind::Phone, phone)));
        }
        if let Some(tag) = &f.tag {
            cond = cond.add(
                customer::Column::Id.in_subquery(
                    Query::select()
                        .column(customer_tag::Column::CustomerId)
                        .from(customer_tag::Entity)
                        .and_where(customer_tag::Column::Tag.eq(tag.as_str()))
                        .to_owned(),
                ),
            );
        }
        if let Some(q) = f.search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let pattern = || LikeExpr::new(format!("%{escaped}%")).escape('\\');
            let lower = |c: customer::Column| Expr::expr(sea_orm::sea_query::Func::lower(Expr::col(c)));
            let mut any = Condition::any()
                .add(lower(customer::Column::FullName).like(pattern()))
                .add(lower(customer::Column::PrimaryEmail).like(pattern()))
                .add(
                    customer::Column::Id.in_subquery(
                        Query::select()
                            .column(identity::Column::CustomerId)
                            .from(identity::Entity)
                            .and_where(Expr::col(identity::Column::Value).like(pattern()))
                            .to_owned(),
                    ),
                );
            let digits: String = q.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 4 {
                any = any.add(Expr::col(customer::Column::PrimaryPhone).like(LikeExpr::new(format!("%{digits}%"))));
            }
            cond = cond.add(any);
        }
        if let Some(t) = f.created_after {
            cond = cond.add(customer::Column::CreatedAt.gte(t));
        }
        if let Some(t) = f.created_before {
            cond = cond.add(customer::Column::CreatedAt.lt(t));
        }
        if let Some(t) = f.updated_after {
            cond = cond.add(customer::Column::UpdatedAt.gte(t));
        }
        if let Some(t) = f.updated_before {
            cond = cond.add(customer::Column::UpdatedAt.lt(t));
        }
        cond
    }

    /// One page of live customers, keyset-paginated on `(sort column, id)`.
    pub async fn list_customers(
        &self,
        filter: &CustomerFilter,
        sort: CustomerSort,
        descending: bool,
        page: PageRequest,
    ) -> StoreResult<Page<customer::Model>> {
        let col = match sort {
            CustomerSort::CreatedAt => customer::Column::CreatedAt,
            CustomerSort::UpdatedAt => customer::Column::UpdatedAt,
        };
        // Reading backwards flips the direction; results are flipped back at the end.
        let desc = descending != page.backward;
        let mut cond = self.filter_condition(filter);
        let cursor = if page.backward { page.before } else { page.after };
        if let Some(Cursor { at, id }) = cursor {
            let (after_t, after_id) = if desc {
                (col.lt(at), customer::Column::Id.lt(id))
            } else {
                (col.gt(at), customer::Column::Id.gt(id))
            };
            cond = cond.add(Condition::any().add(after_t).add(Condition::all().add(col.eq(at)).add(after_id)));
        }
        let ord = if desc { Order::Desc } else { Order::Asc };
        let mut items = customer::Entity::find()
            .filter(cond)
            .order_by(col, ord.clone())
            .order_by(customer::Column::Id, ord)
            .limit(page.limit + 1)
            .all(self.conn())
            .await?;
        let has_more = items.len() as u64 > page.limit;
        items.truncate(page.limit as usize);
        if page.backward {
            items.reverse();
        }
        Ok(Page { items, has_more })
    }

    pub async fn count_customers(&self, filter: &CustomerFilter) -> StoreResult<u64> {
        Ok(customer::Entity::find().filter(self.filter_condition(filter)).count(self.conn()).await?)
    }

    /// Identities of several customers, in one query.
    pub async fn identities_of(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Vec<identity::Model>>> {
        let rows = identity::Entity::find()
            .filter(identity::Column::CustomerId.is_in(ids.iter().copied()))
            .order_by_asc(identity::Column::Kind)
            .order_by_asc(identity::Column::FirstSeen)
            .all(self.conn())
            .await?;
        Ok(group(rows, |r| r.customer_id))
    }

    /// Orders of several customers, newest first, in one query.
    pub async fn orders_of(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Vec<order::Model>>> {
        let rows = order::Entity::find()
            .filter(order::Column::CustomerId.is_in(ids.iter().copied()))
            .order_by_desc(order::Column::PlacedAt)
            .order_by_desc(order::Column::Id)
            .all(self.conn())
            .await?;
        Ok(group(rows, |r| r.customer_id))
    }

    /// Tags of several customers, in one query.
    pub async fn tags_of(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Vec<String>>> {
        let rows = customer_tag::Entity::find()
            .filter(customer_tag::Column::CustomerId.is_in(ids.iter().copied()))
            .order_by_asc(customer_tag::Column::Tag)
            .all(self.conn())
            .await?;
        let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
        for r in rows {
            out.entry(r.customer_id).or_default().push(r.tag);
        }
        Ok(out)
    }

    /// The newest `limit + 1` events of each customer (older than `before`), in one query.
    pub async fn events_of(
        &self,
        ids: &[Uuid],
        limit: u64,
        before: Option<Cursor>,
    ) -> StoreResult<HashMap<Uuid, Vec<event::Model>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let b = self.backend();
        let mut values: Vec<sea_orm::Value> = ids.iter().map(|u| (*u).into()).collect();
        let in_list = (1..=ids.len()).map(|i| ph(b, i)).collect::<Vec<_>>().join(", ");
        let mut cursor_sql = String::new();
        if let Some(c) = before {
            let n = values.len();
            cursor_sql = format!(
                " AND (occurred_at < {p1} OR (occurred_at = {p2} AND id < {p3}))",
                p1 = ph(b, n + 1),
                p2 = ph(b, n + 2),
                p3 = ph(b, n + 3)
            );
            values.push(c.at.into());
            values.push(c.at.into());
            values.push(c.id.into());
        }
        let sql = format!(
            "SELECT id, customer_id, kind, source, occurred_at, properties, created_at FROM (\
               SELECT e.*, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY occurred_at DESC, id DESC) AS rn \
               FROM events e WHERE customer_id IN ({in_list}){cursor_sql}) ranked \
             WHERE rn <= {lim} ORDER BY customer_id, occurred_at DESC, id DESC",
            lim = limit + 1
        );
        let rows =
            event::Model::find_by_statement(Statement::from_sql_and_values(b, sql, values)).all(self.conn()).await?;
        Ok(group(rows, |r| r.customer_id))
    }

    /// Append a timeline event to a live customer.
    pub async fn add_event(&self, e: NewEvent) -> StoreResult<event::Model> {
        let tx = self.write().await?;
        let live = self.live_customer(&tx.txn, e.customer_id.0).await?;
        let model = event::Model {
            id: Uuid::now_v7(),
            customer_id: live.id,
            kind: e.kind,
            source: e.source,
            occurred_at: e.occurred_at.trunc_subsecs(6),
            properties: e.properties,
            created_at: now(),
        };
        event::Entity::insert(event::ActiveModel::from(model.clone())).exec_without_returning(&*tx.txn).await?;
        tx.commit().await?;
        Ok(model)
    }

    /// Edit descriptive fields by recording a manual observation, then recompute.
    pub async fn update_customer(
        &self,
        extractor: &KeyExtractor,
        id: CustomerId,
        patch: CustomerPatch,
    ) -> StoreResult<CustomerId> {
        let (live, _) = self.customer(id).await?.ok_or(StoreError::NotFound)?;
        let obs = Observation {
            source: crate::identity::SourceRef {
                source: "manual".into(),
                connector_id: None,
                namespace: "manual".into(),
                inbox_id: None,
            },
            record_id: None,
            record_kind: "customer".into(),
            identifiers: vec![],
            profile: crate::identity::Profile {
                given_name: patch.given_name,
                family_name: patch.family_name,
                full_name: patch.full_name,
                ..Default::default()
            },
            traits: patch.traits,
            tags: vec![],
            occurred_at: Some(now()),
        };
        let tx = self.write().await?;
        let outcome = self.ingest_in(&tx.txn, extractor, &obs, None, Some(CustomerId(live.id))).await?;
        let at = now();
        if let Some(stage) = patch.lifecycle_stage {
            customer::Entity::update_many()
                .col_expr(customer::Column::LifecycleStage, Expr::value(stage))
                .filter(customer::Column::Id.eq(outcome.customer_id.0))
                .exec(&*tx.txn)
                .await?;
        }
        self.add_tags(&tx.txn, outcome.customer_id, patch.add_tags.iter().map(String::as_str), at).await?;
        if !patch.remove_tags.is_empty() {
            customer_tag::Entity::delete_many()
                .filter(customer_tag::Column::CustomerId.eq(outcome.customer_id.0))
                .filter(customer_tag::Column::Tag.is_in(patch.remove_tags.iter().map(String::as_str)))
                .exec(&*tx.txn)
                .await?;
            // A removed tag must not come back from a source record on the next recompute.
            self.strip_tags_from_sources(&tx.txn, outcome.customer_id, &patch.remove_tags).await?;
        }
        tx.commit().await?;
        Ok(outcome.customer_id)
    }

    async fn strip_tags_from_sources(
        &self,
        txn: &DatabaseTransaction,
        id: CustomerId,
        remove: &[String],
    ) -> StoreResult<()> {
        let rows = source_record::Entity::find().filter(source_record::Column::CustomerId.eq(id.0)).all(txn).await?;
        for r in rows {
            let Ok(mut obs) = serde_json::from_value::<Observation>(r.payload.clone()) else { continue };
            let before = obs.tags.len();
            obs.tags.retain(|t| !remove.contains(t));
            if obs.tags.len() != before {
                let payload = serde_json::to_value(&obs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                source_record::Entity::update_many()
                    .col_expr(source_record::Column::Payload, Expr::value(payload))
                    .filter(source_record::Column::Id.eq(r.id))
                    .exec(txn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Delete a customer and everything attached to it (identities, events, orders, tags,
    /// source records, and customers previously absorbed into it).
    pub async fn delete_customer(&self, id: CustomerId) -> StoreResult<CustomerId> {
        let tx = self.write().await?;
        let live = self.live_customer(&tx.txn, id.0).await?;
        let mut doomed: BTreeSet<Uuid> = BTreeSet::from([live.id]);
        let absorbed = customer::Entity::find().filter(customer::Column::MergedInto.eq(live.id)).all(&*tx.txn).await?;
        doomed.extend(absorbed.iter().map(|c| c.id));
        let doomed: Vec<Uuid> = doomed.into_iter().collect();
        delete_attached_rows(&tx.txn, &doomed).await?;
        customer::Entity::update_many()
            .col_expr(customer::Column::MergedInto, Expr::value(Option::<Uuid>::None))
            .filter(customer::Column::Id.is_in(doomed.iter().copied()))
            .exec(&*tx.txn)
            .await?;
        customer::Entity::delete_many()
            .filter(customer::Column::Id.is_in(doomed.iter().copied()))
            .exec(&*tx.txn)
            .await?;
        tx.commit().await?;
        Ok(CustomerId(live.id))
    }

    /// Stream every live customer in id order, `batch` at a time (export).
    pub async fn customers_after(&self, after: Option<Uuid>, batch: u64) -> StoreResult<Vec<customer::Model>> {
        let mut q = customer::Entity::find().filter(customer::Column::MergedInto.is_null());
        if let Some(a) = after {
            q = q.filter(customer::Column::Id.gt(a));
        }
        Ok(q.order_by_asc(customer::Column::Id).limit(batch).all(self.conn()).await?)
    }
}

async fn customer_regions(
    extractor: &KeyExtractor,
    held: &[identity::Model],
    _txn: &DatabaseTransaction,
) -> StoreResult<Vec<String>> {
    // The regions of phones already known for the matched customers.
    let mut regions: Vec<String> = Vec::new();
    for h in held.iter().filter(|h| h.kind == "phone") {
        if let Ok((_, Some(r))) = extractor.phone_key(&h.value, extractor.hints(None, None, &[])) {
            if !regions.contains(&r) {
                regions.push(r);
            }
        }
    }
    Ok(regions)
}

/// Upsert identity rows on (customer, key): `active` rows claim the key and take the newer
/// raw form (the partial unique index refuses a second active holder); set-aside rows only
/// mark an existing row seen.
pub(crate) async fn insert_identities(
    txn: &DatabaseTransaction,
    rows: Vec<identity::ActiveModel>,
    active: bool,
) -> StoreResult<()> {
    insert_rows(txn, rows, identity_upsert(active)).await
}

/// The `ON CONFLICT` clause of an identity insert: `active` rows claim the key and take the
/// newer raw form, set-aside rows only mark an existing row seen.
pub(crate) fn identity_upsert(active: bool) -> &'static str {
    if active {
        "ON CONFLICT (customer_id, key_hash) DO UPDATE SET last_seen = excluded.last_seen, \
         raw = excluded.raw, status = excluded.status, set_aside_reason = excluded.set_aside_reason"
    } else {
        "ON CONFLICT (customer_id, key_hash) DO UPDATE SET last_seen = excluded.last_seen"
    }
}

/// The `ON CONFLICT` clause of a tag insert: tags already there stay.
pub(crate) const KEEP_TAGS: &str = "ON CONFLICT (customer_id, tag) DO NOTHING";

/// Add tags, keeping those already there.
pub(crate) async fn insert_tags(txn: &DatabaseTransaction, rows: Vec<customer_tag::ActiveModel>) -> StoreResult<()> {
    insert_rows(txn, rows, KEEP_TAGS).await
}

fn group<T>(rows: Vec<T>, key: impl Fn(&T) -> Uuid) -> HashMap<Uuid, Vec<T>> {
    let mut out: HashMap<Uuid, Vec<T>> = HashMap::new();
    for r in rows {
        out.entry(key(&r)).or_default().push(r);
    }
    out
}
