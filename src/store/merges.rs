//! The merge ledger and the review queue: absorbing one customer into another (recording
//! what moved), manual merges, previews, unmerges, merge candidates and match explanations.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::customers::now;
use super::entities::{customer, event, identity, merge, merge_candidate, order, source_record};
use super::{Cursor, Page, PageRequest, Store, StoreError, StoreResult};
use crate::identity::normalize::PersonName;
use crate::identity::rules::{self, blocked_pair, Blocked, CustomerView, Explanation, HeldKey};
use crate::identity::survivorship::{golden_record_with, GoldenRecord};
use crate::identity::{IdentityKey, IdentityKind, KeyExtractor, Observation};
use crate::ids::CustomerId;

/// What a merge of two customers would give, without making it.
#[derive(Debug, Clone)]
pub struct MergePreview {
    pub survivor: CustomerId,
    pub absorbed: CustomerId,
    pub golden: GoldenRecord,
    pub identities: Vec<identity::Model>,
    pub explanation: Explanation,
}

/// What an unmerge restored.
#[derive(Debug, Clone)]
pub struct UnmergeOutcome {
    pub survivor: CustomerId,
    pub restored: CustomerId,
}

fn view_of(c: &customer::Model, idents: &[identity::Model]) -> CustomerView {
    CustomerView {
        id: CustomerId(c.id),
        name: PersonName::parse(c.given_name.as_deref(), c.family_name.as_deref(), c.full_name.as_deref()).ok(),
        identities: idents
            .iter()
            .filter(|i| i.customer_id == c.id)
            .filter_map(|i| {
                Some(HeldKey {
                    key: IdentityKey {
                        kind: IdentityKind::parse(&i.kind)?,
                        namespace: i.namespace.clone(),
                        value: i.value.clone(),
                    },
                    active: i.status == "active",
                })
            })
            .collect(),
    }
}

/// Queue review candidates; a pair already queued (or decided) stays as it is.
pub(crate) async fn insert_candidates(
    txn: &DatabaseTransaction,
    rows: Vec<merge_candidate::ActiveModel>,
) -> StoreResult<()> {
    super::rows::insert_rows(txn, rows, KEEP_CANDIDATES).await
}

/// The `ON CONFLICT` clause of a candidate insert: a pair already queued or decided stays.
pub(crate) const KEEP_CANDIDATES: &str = "ON CONFLICT (customer_a, customer_b) DO NOTHING";

/// One statement (SQLite: one string of statements, sent once) that moves everything of
/// customer `$2` to `$1` for a merge at `$3` by `$4`, and settles the pair's pending
/// suggestion (`$5`, `$6` in order): identities, source records, events and orders are
/// re-pointed, tags copied over (those already there stay), the absorbed customer and those
/// redirected to it point to the survivor. Returns one row per moved thing: `part`, and
/// `id` or `tag`. A merge used to send these as eight statements, each a round trip to the
/// database's thread or server.
fn move_all_sql(b: sea_orm::DatabaseBackend) -> &'static str {
    const SQLITE: &str = "\
        UPDATE identities SET customer_id = ?1 WHERE customer_id = ?2 RETURNING 'identities' AS part, id, NULL AS tag; \
        UPDATE source_records SET customer_id = ?1 WHERE customer_id = ?2 RETURNING 'source_records' AS part, id, NULL AS tag; \
        UPDATE events SET customer_id = ?1 WHERE customer_id = ?2 RETURNING 'events' AS part, id, NULL AS tag; \
        UPDATE orders SET customer_id = ?1 WHERE customer_id = ?2 RETURNING 'orders' AS part, id, NULL AS tag; \
        INSERT INTO customer_tags (customer_id, tag, created_at) SELECT ?1, tag, ?3 FROM customer_tags \
          WHERE customer_id = ?2 ON CONFLICT (customer_id, tag) DO NOTHING; \
        DELETE FROM customer_tags WHERE customer_id = ?2 RETURNING 'tags' AS part, NULL AS id, tag; \
        UPDATE customers SET merged_into = ?1 WHERE id = ?2 OR merged_into = ?2 \
          RETURNING 'redirected' AS part, id, NULL AS tag; \
        UPDATE merge_candidates SET status = 'accepted', decided_at = ?3, decided_by = ?4 \
          WHERE customer_a = ?5 AND customer_b = ?6 AND status = 'pending'";
    // Data-modifying WITH clauses all run, once, on the statement's snapshot: the tag copy
    // reads the absorbed customer's tags as they were before the delete beside it.
    const POSTGRES: &str = "\
        WITH i AS (UPDATE identities SET customer_id = $1 WHERE customer_id = $2 RETURNING id), \
        r AS (UPDATE source_records SET customer_id = $1 WHERE customer_id = $2 RETURNING id), \
        e AS (UPDATE events SET customer_id = $1 WHERE customer_id = $2 RETURNING id), \
        o AS (UPDATE orders SET customer_id = $1 WHERE customer_id = $2 RETURNING id), \
        tc AS (INSERT INTO customer_tags (customer_id, tag, created_at) SELECT $1, tag, $3 FROM customer_tags \
          WHERE customer_id = $2 ON CONFLICT (customer_id, tag) DO NOTHING), \
        td AS (DELETE FROM customer_tags WHERE customer_id = $2 RETURNING tag), \
        c AS (UPDATE customers SET merged_into = $1 WHERE id = $2 OR merged_into = $2 RETURNING id), \
        m AS (UPDATE merge_candidates SET status = 'accepted', decided_at = $3, decided_by = $4 \
          WHERE customer_a = $5 AND customer_b = $6 AND status = 'pending') \
        SELECT 'identities' AS part, id, NULL::text AS tag FROM i \
        UNION ALL SELECT 'source_records', id, NULL FROM r \
        UNION ALL SELECT 'events', id, NULL FROM e \
        UNION ALL SELECT 'orders', id, NULL FROM o \
        UNION ALL SELECT 'tags', NULL::uuid, tag FROM td \
        UNION ALL SELECT 'redirected', id, NULL FROM c";
    match b {
        sea_orm::DatabaseBackend::Postgres => POSTGRES,
        _ => SQLITE,
    }
}

/// What a merge's ledger row says: who absorbs whom, by which rule, on what evidence, by
/// whom, why and when.
pub(crate) struct MergeFacts<'a> {
    /// The ledger row's id, taken when the merge is decided: a version 7 UUID, so it sorts
    /// after every row written before the decision and before every row written after it,
    /// which tells an undo what came later when a whole batch shares one timestamp.
    pub id: Uuid,
    pub survivor: CustomerId,
    pub absorbed: CustomerId,
    pub rule: &'a str,
    pub evidence: Value,
    pub actor: &'a str,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl MergeFacts<'static> {
    /// A merge the rules made on a shared identifier.
    pub(crate) fn automatic(survivor: CustomerId, absorbed: CustomerId, evidence: Value, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            survivor,
            absorbed,
            rule: "shared_identifier",
            evidence,
            actor: "system",
            reason: None,
            at,
        }
    }
}

/// Of two rows of one key, the absorbed customer's and the survivor's, whether the merge
/// keeps the absorbed one (it is active and the survivor's is not); the other is dropped.
pub(crate) fn absorbed_row_wins(absorbed: &identity::Model, survivor: &identity::Model) -> bool {
    absorbed.status == "active" && survivor.status != "active"
}

/// An identity row a merge dropped, as its ledger keeps it for an unmerge to restore.
pub(crate) fn dropped_identity(row: &identity::Model) -> Value {
    json!({
        "id": row.id, "customer_id": row.customer_id, "kind": row.kind, "namespace": row.namespace,
        "value": row.value, "raw": row.raw, "source_connector": row.source_connector,
        "status": row.status, "set_aside_reason": row.set_aside_reason,
        "first_seen": row.first_seen, "last_seen": row.last_seen,
    })
}

/// What a merge moved, as its ledger keeps it (`merges.moved`) for an unmerge.
#[derive(Default)]
pub(crate) struct Moved {
    pub identities: Vec<Uuid>,
    pub dropped_identities: Vec<Value>,
    pub source_records: Vec<Uuid>,
    pub events: Vec<Uuid>,
    pub orders: Vec<Uuid>,
    pub tags: Vec<String>,
    pub redirected: Vec<Uuid>,
}

impl MergeFacts<'_> {
    /// The ledger row of this merge, which moved `moved`.
    pub(crate) fn ledger_row(self, mut moved: Moved) -> merge::ActiveModel {
        moved.identities.sort_unstable();
        let Moved { identities, dropped_identities, source_records, events, orders, tags, redirected } = moved;
        let json = json!({
            "identities": identities, "dropped_identities": dropped_identities, "source_records": source_records,
            "events": events, "orders": orders, "tags": tags,
            "redirected": redirected,
        });
        metrics::counter!("junction_merges_total", "rule" => self.rule.to_string()).increment(1);
        merge::ActiveModel {
            id: Set(self.id),
            survivor_id: Set(self.survivor.0),
            absorbed_id: Set(self.absorbed.0),
            rule: Set(self.rule.to_string()),
            evidence: Set(self.evidence),
            actor: Set(self.actor.to_string()),
            reason: Set(self.reason),
            created_at: Set(self.at),
            undone_at: Set(None),
            undone_by: Set(None),
            moved: Set(Some(json)),
        }
    }
}

/// A pair of customers in the order merge candidates store it.
pub(crate) fn ordered(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Store {
    /// The rules' view of some live customers: golden name and every identity.
    pub(crate) async fn customer_views<C: ConnectionTrait>(
        &self,
        db: &C,
        ids: &[Uuid],
    ) -> StoreResult<Vec<CustomerView>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut views = Vec::with_capacity(ids.len());
        for chunk in super::shapes::padded_in(ids, 256) {
            let customers =
                customer::Entity::find().filter(customer::Column::Id.is_in(chunk.iter().copied())).all(db).await?;
            let idents = identity::Entity::find()
                .filter(identity::Column::CustomerId.is_in(chunk.iter().copied()))
                .all(db)
                .await?;
            let mut by_customer: HashMap<Uuid, Vec<identity::Model>> = HashMap::new();
            for i in idents {
                by_customer.entry(i.customer_id).or_default().push(i);
            }
            views
                .extend(customers.iter().map(|c| view_of(c, by_customer.get(&c.id).map(Vec::as_slice).unwrap_or(&[]))));
        }
        views.sort_by_key(|v| v.id);
        Ok(views)
    }

    /// Pairs among `ids` that must not merge automatically: rejected candidates and
    /// undone merges (an unmerge records a rejected candidate).
    pub(crate) async fn blocked_pairs<C: ConnectionTrait>(&self, db: &C, ids: &[Uuid]) -> StoreResult<Blocked> {
        if ids.len() < 2 {
            return Ok(Blocked::new());
        }
        let rows = merge_candidate::Entity::find()
            .filter(merge_candidate::Column::Status.eq("rejected"))
            .filter(merge_candidate::Column::CustomerA.is_in(ids.iter().copied()))
            .filter(merge_candidate::Column::CustomerB.is_in(ids.iter().copied()))
            .all(db)
            .await?;
        Ok(rows.iter().map(|r| blocked_pair(CustomerId(r.customer_a), CustomerId(r.customer_b))).collect())
    }

    /// Every pair that must not merge automatically with one side among `ids` (a superset
    /// of [`Store::blocked_pairs`] of any subset: the bulk path reads it once per batch).
    pub(crate) async fn pairs_blocked_around<C: ConnectionTrait>(&self, db: &C, ids: &[Uuid]) -> StoreResult<Blocked> {
        let mut out = Blocked::new();
        if ids.is_empty() {
            return Ok(out);
        }
        for chunk in super::shapes::padded_in(ids, 256) {
            let rows = merge_candidate::Entity::find()
                .filter(merge_candidate::Column::Status.eq("rejected"))
                .filter(
                    Condition::any()
                        .add(merge_candidate::Column::CustomerA.is_in(chunk.iter().copied()))
                        .add(merge_candidate::Column::CustomerB.is_in(chunk.iter().copied())),
                )
                .all(db)
                .await?;
            out.extend(rows.iter().map(|r| blocked_pair(CustomerId(r.customer_a), CustomerId(r.customer_b))));
        }
        Ok(out)
    }

    /// Queue a pair for review (once per pair; a decided pair stays decided).
    pub(crate) async fn suggest_pair(
        &self,
        txn: &DatabaseTransaction,
        a: CustomerId,
        b: CustomerId,
        rule: &str,
        evidence: Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (x, y) = ordered(a.0, b.0);
        let row = vec![merge_candidate::ActiveModel {
            id: Set(Uuid::now_v7()),
            customer_a: Set(x),
            customer_b: Set(y),
            rule: Set(rule.to_string()),
            evidence: Set(evidence),
            status: Set("pending".into()),
            created_at: Set(at),
            decided_at: Set(None),
            decided_by: Set(None),
        }];
        insert_candidates(txn, row).await
    }

    /// Move everything of `absorbed` onto `survivor` and record the merge, with the list
    /// of what moved so that an unmerge can put it back.
    pub(crate) async fn absorb(&self, txn: &DatabaseTransaction, facts: MergeFacts<'_>) -> StoreResult<Uuid> {
        self.merge_consents(txn, facts.survivor, facts.absorbed).await?;
        let entry = self.absorb_unrecorded(txn, facts).await?;
        let id = *entry.id.as_ref();
        merge::Entity::insert(entry).exec_without_returning(txn).await?;
        Ok(id)
    }

    /// [`Store::absorb`] but for the consents (the caller merges them first, where the
    /// absorbed customer has any) and its ledger row, which is returned for the caller to
    /// write in the same transaction (a bulk batch writes its merges' rows together).
    pub(crate) async fn absorb_unrecorded(
        &self,
        txn: &DatabaseTransaction,
        facts: MergeFacts<'_>,
    ) -> StoreResult<merge::ActiveModel> {
        let (s, a, at, actor) = (facts.survivor.0, facts.absorbed.0, facts.at, facts.actor);
        // Keys both hold: keep one row, the active one if either is active.
        let idents = identity::Entity::find()
            .filter(identity::Column::CustomerId.is_in([s, a]))
            .order_by_asc(identity::Column::Id)
            .all(txn)
            .await?;
        let mut dropped: Vec<Value> = Vec::new();
        let mut drop_ids: Vec<Uuid> = Vec::new();
        for ai in idents.iter().filter(|i| i.customer_id == a) {
            if let Some(si) = idents.iter().find(|i| i.customer_id == s && i.key_hash == ai.key_hash) {
                let loser = if absorbed_row_wins(ai, si) { si } else { ai };
                drop_ids.push(loser.id);
                dropped.push(dropped_identity(loser));
            }
        }
        if !drop_ids.is_empty() {
            identity::Entity::delete_many().filter(identity::Column::Id.is_in(drop_ids.clone())).exec(txn).await?;
        }
        let b = txn.get_database_backend();
        let (x, y) = ordered(s, a);
        let moves = txn
            .query_all(Statement::from_sql_and_values(
                b,
                move_all_sql(b),
                [s.into(), a.into(), at.into(), actor.into(), x.into(), y.into()],
            ))
            .await?;
        let (mut moved_idents, mut records, mut events, mut orders, mut redirected) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut tags: Vec<String> = Vec::new();
        for row in &moves {
            let part: String = row.try_get("", "part")?;
            let list = match part.as_str() {
                "tags" => {
                    tags.push(row.try_get::<String>("", "tag")?);
                    continue;
                }
                "identities" => &mut moved_idents,
                "source_records" => &mut records,
                "events" => &mut events,
                "orders" => &mut orders,
                "redirected" => &mut redirected,
                other => return Err(corrupt(format!("unexpected part {other} of a merge's moves"))),
            };
            list.push(row.try_get::<Uuid>("", "id")?);
        }
        // The absorbed customer and those already redirected to it now point to the survivor.
        redirected.retain(|id| *id != a);
        let moved = Moved {
            identities: moved_idents,
            dropped_identities: dropped,
            source_records: records,
            events,
            orders,
            tags,
            redirected,
        };
        Ok(facts.ledger_row(moved))
    }

    /// Merge two customers by hand (the older id survives). Returns the merge id and survivor.
    pub async fn merge_customers(
        &self,
        a: CustomerId,
        b: CustomerId,
        rule: &str,
        actor: &str,
        reason: Option<String>,
    ) -> StoreResult<(Uuid, CustomerId, CustomerId)> {
        let tx = self.write().await?;
        let la = self.live_customer(&tx.txn, a.0).await?;
        let lb = self.live_customer(&tx.txn, b.0).await?;
        if la.id == lb.id {
            return Err(StoreError::Conflict("the customers are already one".into()));
        }
        let (s, x) = if la.id <= lb.id { (la.id, lb.id) } else { (lb.id, la.id) };
        let at = now();
        let views = self.customer_views(&*tx.txn, &[s, x]).await?;
        let evidence = match views.as_slice() {
            [v1, v2] => serde_json::to_value(rules::explain(&Default::default(), v1, v2, &Blocked::new()).shared)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        };
        // A manual merge overrides an earlier rejection of the pair.
        let (p, q) = ordered(s, x);
        merge_candidate::Entity::update_many()
            .col_expr(merge_candidate::Column::Status, Expr::value("accepted"))
            .col_expr(merge_candidate::Column::DecidedAt, Expr::value(at))
            .col_expr(merge_candidate::Column::DecidedBy, Expr::value(actor))
            .filter(merge_candidate::Column::CustomerA.eq(p))
            .filter(merge_candidate::Column::CustomerB.eq(q))
            .exec(&*tx.txn)
            .await?;
        let facts = MergeFacts {
            id: Uuid::now_v7(),
            survivor: CustomerId(s),
            absorbed: CustomerId(x),
            rule,
            evidence,
            actor,
            reason,
            at,
        };
        let id = self.absorb(&tx.txn, facts).await?;
        self.recompute(&tx.txn, CustomerId(s), at).await?;
        tx.commit().await?;
        Ok((id, CustomerId(s), CustomerId(x)))
    }

    /// Undo a merge: put back what it moved (and records that arrived since through the
    /// absorbed side's identifiers), recompute both golden records from their source
    /// records, and block the pair from merging again automatically.
    pub async fn unmerge(&self, extractor: &KeyExtractor, merge_id: Uuid, actor: &str) -> StoreResult<UnmergeOutcome> {
        let tx = self.write().await?;
        let txn = &*tx.txn;
        let m = merge::Entity::find_by_id(merge_id).one(txn).await?.ok_or(StoreError::NotFound)?;
        if m.undone_at.is_some() {
            return Err(StoreError::Conflict("this merge was already undone".into()));
        }
        let s_row = customer::Entity::find_by_id(m.survivor_id).one(txn).await?.ok_or(StoreError::NotFound)?;
        if s_row.merged_into.is_some() {
            return Err(StoreError::Conflict("the survivor was merged again since: undo that merge first".into()));
        }
        let moved =
            m.moved.clone().ok_or_else(|| StoreError::Conflict("this merge predates unmerge support".into()))?;
        let list = |name: &str| -> Vec<Uuid> {
            moved[name]
                .as_array()
                .map(|a| a.iter().filter_map(|v| serde_json::from_value(v.clone()).ok()).collect())
                .unwrap_or_default()
        };
        let (s, a) = (m.survivor_id, m.absorbed_id);
        let at = now();
        let back = |ids: Vec<Uuid>| ids;
        identity::Entity::update_many()
            .col_expr(identity::Column::CustomerId, Expr::value(a))
            .filter(identity::Column::Id.is_in(back(list("identities"))))
            .filter(identity::Column::CustomerId.eq(s))
            .exec(txn)
            .await?;
        source_record::Entity::update_many()
            .col_expr(source_record::Column::CustomerId, Expr::value(a))
            .filter(source_record::Column::Id.is_in(list("source_records")))
            .filter(source_record::Column::CustomerId.eq(s))
            .exec(txn)
            .await?;
        event::Entity::update_many()
            .col_expr(event::Column::CustomerId, Expr::value(a))
            .filter(event::Column::Id.is_in(list("events")))
            .filter(event::Column::CustomerId.eq(s))
            .exec(txn)
            .await?;
        order::Entity::update_many()
            .col_expr(order::Column::CustomerId, Expr::value(a))
            .filter(order::Column::Id.is_in(list("orders")))
            .filter(order::Column::CustomerId.eq(s))
            .exec(txn)
            .await?;
        // Rows dropped as duplicates come back on their owner.
        for d in moved["dropped_identities"].as_array().cloned().unwrap_or_default() {
            let owner: Uuid = serde_json::from_value(d["customer_id"].clone()).map_err(corrupt)?;
            let parse_ts = |v: &Value| serde_json::from_value::<DateTime<Utc>>(v.clone()).unwrap_or(at);
            let (kind, namespace, value) = (
                d["kind"].as_str().unwrap_or_default(),
                d["namespace"].as_str().unwrap_or_default(),
                d["value"].as_str().unwrap_or_default(),
            );
            let row = identity::ActiveModel {
                id: Set(Uuid::now_v7()),
                customer_id: Set(owner),
                kind: Set(kind.to_string()),
                namespace: Set(namespace.to_string()),
                value: Set(value.to_string()),
                key_hash: Set(crate::identity::keys::key_hash(kind, namespace, value)),
                raw: Set(d["raw"].as_str().map(str::to_string)),
                source_connector: Set(d["source_connector"].as_str().map(str::to_string)),
                status: Set("set_aside".into()),
                set_aside_reason: Set(Some("held by another customer".into())),
                first_seen: Set(parse_ts(&d["first_seen"])),
                last_seen: Set(parse_ts(&d["last_seen"])),
            };
            identity::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([identity::Column::CustomerId, identity::Column::KeyHash])
                        .do_nothing()
                        .to_owned(),
                )
                .do_nothing()
                .exec_without_returning(txn)
                .await?;
        }
        // Records that arrived after the merge and were identified only by the absorbed
        // side's identifiers go back with their identifiers. "After" is by time, and within
        // one time (a bulk batch writes all its rows at one) by id: ids are version 7
        // UUIDs and the merge's was taken when it was decided.
        let after = |t: DateTime<Utc>, id: Uuid| (t, id) > (m.created_at, m.id);
        let later: Vec<source_record::Model> = source_record::Entity::find()
            .filter(source_record::Column::CustomerId.eq(s))
            .filter(source_record::Column::ReceivedAt.gte(m.created_at))
            .all(txn)
            .await?
            .into_iter()
            .filter(|r| after(r.received_at, r.id))
            .collect();
        let idents = identity::Entity::find().filter(identity::Column::CustomerId.is_in([s, a])).all(txn).await?;
        let holder = |k: &IdentityKey| {
            idents
                .iter()
                .find(|i| i.kind == k.kind.as_str() && i.namespace == k.namespace && i.value == k.value)
                .map(|i| (i.customer_id, i.id, after(i.first_seen, i.id)))
        };
        for r in later {
            let Ok(obs) = serde_json::from_value::<Observation>(r.payload.clone()) else { continue };
            let keys = extractor.extract(&obs, None).keys;
            // (holder, identity row, whether the row was first written after the merge)
            let held: Vec<(Uuid, Uuid, bool)> = keys.iter().filter_map(|k| holder(&k.key)).collect();
            let by_a = held.iter().any(|(c, _, later)| *c == a && !*later);
            let by_s = held.iter().any(|(c, _, later)| *c == s && !*later);
            if by_a && !by_s {
                source_record::Entity::update_many()
                    .col_expr(source_record::Column::CustomerId, Expr::value(a))
                    .filter(source_record::Column::Id.eq(r.id))
                    .exec(txn)
                    .await?;
                let new_ids: Vec<Uuid> =
                    held.iter().filter(|(c, _, later)| *c == s && *later).map(|(_, id, _)| *id).collect();
                identity::Entity::update_many()
                    .col_expr(identity::Column::CustomerId, Expr::value(a))
                    .filter(identity::Column::Id.is_in(new_ids))
                    .exec(txn)
                    .await?;
            }
        }
        let tags: Vec<String> = moved["tags"]
            .as_array()
            .map(|t| t.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        self.add_tags(txn, CustomerId(a), tags.iter().map(String::as_str), at).await?;
        customer::Entity::update_many()
            .col_expr(customer::Column::MergedInto, Expr::value(Option::<Uuid>::None))
            .filter(customer::Column::Id.eq(a))
            .exec(txn)
            .await?;
        let redirected = list("redirected");
        if !redirected.is_empty() {
            customer::Entity::update_many()
                .col_expr(customer::Column::MergedInto, Expr::value(a))
                .filter(customer::Column::Id.is_in(redirected))
                .exec(txn)
                .await?;
        }
        merge::Entity::update_many()
            .col_expr(merge::Column::UndoneAt, Expr::value(at))
            .col_expr(merge::Column::UndoneBy, Expr::value(actor))
            .filter(merge::Column::Id.eq(merge_id))
            .exec(txn)
            .await?;
        // Block the pair: the next record carrying both sides' identifiers must not
        // silently undo the unmerge.
        let (x, y) = ordered(s, a);
        merge_candidate::Entity::insert(merge_candidate::ActiveModel {
            id: Set(Uuid::now_v7()),
            customer_a: Set(x),
            customer_b: Set(y),
            rule: Set("unmerged".into()),
            evidence: Set(m.evidence.clone()),
            status: Set("rejected".into()),
            created_at: Set(at),
            decided_at: Set(Some(at)),
            decided_by: Set(Some(actor.to_string())),
        })
        .on_conflict(
            OnConflict::columns([merge_candidate::Column::CustomerA, merge_candidate::Column::CustomerB])
                .update_columns([
                    merge_candidate::Column::Status,
                    merge_candidate::Column::DecidedAt,
                    merge_candidate::Column::DecidedBy,
                ])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        // Keys held by both after the split: the absorbed side keeps active what it had.
        self.fix_split_identities(txn, s, a).await?;
        self.recompute(txn, CustomerId(s), at).await?;
        self.recompute(txn, CustomerId(a), at).await?;
        tx.commit().await?;
        Ok(UnmergeOutcome { survivor: CustomerId(s), restored: CustomerId(a) })
    }

    /// After a split, a key can be set aside on one side only because the other side held
    /// it; if no one holds it actively any more, make it active again.
    async fn fix_split_identities(&self, txn: &DatabaseTransaction, s: Uuid, a: Uuid) -> StoreResult<()> {
        let rows = identity::Entity::find()
            .filter(identity::Column::CustomerId.is_in([s, a]))
            .filter(identity::Column::Status.eq("set_aside"))
            .filter(identity::Column::SetAsideReason.eq("held by another customer"))
            .all(txn)
            .await?;
        for r in rows {
            let active = identity::Entity::find()
                .filter(identity::Column::KeyHash.eq(r.key_hash))
                .filter(identity::Column::Status.eq("active"))
                .one(txn)
                .await?;
            if active.is_none() {
                identity::Entity::update_many()
                    .col_expr(identity::Column::Status, Expr::value("active"))
                    .col_expr(identity::Column::SetAsideReason, Expr::value(Option::<String>::None))
                    .filter(identity::Column::Id.eq(r.id))
                    .exec(txn)
                    .await?;
            }
        }
        Ok(())
    }

    /// The golden record and identities two customers would have once merged.
    pub async fn preview_merge(
        &self,
        extractor: &KeyExtractor,
        a: CustomerId,
        b: CustomerId,
    ) -> StoreResult<MergePreview> {
        let (la, _) = self.customer(a).await?.ok_or(StoreError::NotFound)?;
        let (lb, _) = self.customer(b).await?.ok_or(StoreError::NotFound)?;
        if la.id == lb.id {
            return Err(StoreError::Conflict("the customers are already one".into()));
        }
        let (s, x) = if la.id <= lb.id { (la.id, lb.id) } else { (lb.id, la.id) };
        let records = source_record::Entity::find()
            .filter(source_record::Column::CustomerId.is_in([s, x]))
            .order_by_asc(source_record::Column::ReceivedAt)
            .order_by_asc(source_record::Column::Id)
            .all(self.conn())
            .await?;
        let observations: Vec<Observation> =
            records.into_iter().filter_map(|r| serde_json::from_value(r.payload).ok()).collect();
        let golden = golden_record_with(&self.survivorship, &observations);
        let identities = identity::Entity::find()
            .filter(identity::Column::CustomerId.is_in([s, x]))
            .order_by_asc(identity::Column::Kind)
            .order_by_asc(identity::Column::FirstSeen)
            .all(self.conn())
            .await?;
        let explanation = self.explain_match(extractor, CustomerId(s), CustomerId(x)).await?;
        Ok(MergePreview { survivor: CustomerId(s), absorbed: CustomerId(x), golden, identities, explanation })
    }

    /// How the rules treat two customers.
    pub async fn explain_match(
        &self,
        extractor: &KeyExtractor,
        a: CustomerId,
        b: CustomerId,
    ) -> StoreResult<Explanation> {
        let (la, _) = self.customer(a).await?.ok_or(StoreError::NotFound)?;
        let (lb, _) = self.customer(b).await?.ok_or(StoreError::NotFound)?;
        let views = self.customer_views(self.conn(), &[la.id, lb.id]).await?;
        let blocked = self.blocked_pairs(self.conn(), &[la.id, lb.id]).await?;
        let va = views.iter().find(|v| v.id.0 == la.id).ok_or(StoreError::NotFound)?;
        let vb = views.iter().find(|v| v.id.0 == lb.id).ok_or(StoreError::NotFound)?;
        Ok(rules::explain(extractor.rules(), va, vb, &blocked))
    }

    /// Merges where `id` (or anything absorbed into it) survived or was absorbed, newest first.
    pub async fn merge_history(&self, id: CustomerId) -> StoreResult<Vec<merge::Model>> {
        Ok(merge::Entity::find()
            .filter(Condition::any().add(merge::Column::SurvivorId.eq(id.0)).add(merge::Column::AbsorbedId.eq(id.0)))
            .order_by_desc(merge::Column::CreatedAt)
            .order_by_desc(merge::Column::Id)
            .all(self.conn())
            .await?)
    }

    pub async fn merge_by_id(&self, id: Uuid) -> StoreResult<Option<merge::Model>> {
        Ok(merge::Entity::find_by_id(id).one(self.conn()).await?)
    }

    /// The review queue, oldest first, keyset-paginated.
    pub async fn merge_candidates(&self, status: &str, page: PageRequest) -> StoreResult<Page<merge_candidate::Model>> {
        let mut q = merge_candidate::Entity::find().filter(merge_candidate::Column::Status.eq(status));
        if let Some(Cursor { at, id }) = page.after {
            q = q.filter(Condition::any().add(merge_candidate::Column::CreatedAt.gt(at)).add(
                Condition::all().add(merge_candidate::Column::CreatedAt.eq(at)).add(merge_candidate::Column::Id.gt(id)),
            ));
        }
        let mut items = q
            .order_by_asc(merge_candidate::Column::CreatedAt)
            .order_by_asc(merge_candidate::Column::Id)
            .limit(page.limit + 1)
            .all(self.conn())
            .await?;
        let has_more = items.len() as u64 > page.limit;
        items.truncate(page.limit as usize);
        Ok(Page { items, has_more })
    }

    pub async fn merge_candidate(&self, id: Uuid) -> StoreResult<Option<merge_candidate::Model>> {
        Ok(merge_candidate::Entity::find_by_id(id).one(self.conn()).await?)
    }

    /// Accept (merge the pair) or reject (never merge it automatically) a candidate.
    /// Returns the merge id when accepted.
    pub async fn resolve_candidate(&self, id: Uuid, accept: bool, actor: &str) -> StoreResult<Option<Uuid>> {
        let c = self.merge_candidate(id).await?.ok_or(StoreError::NotFound)?;
        if c.status != "pending" {
            return Err(StoreError::Conflict(format!("this candidate was already {}", c.status)));
        }
        if accept {
            let (a, b) = (CustomerId(c.customer_a), CustomerId(c.customer_b));
            let (la, _) = self.customer(a).await?.ok_or(StoreError::NotFound)?;
            let (lb, _) = self.customer(b).await?.ok_or(StoreError::NotFound)?;
            let merge_id = if la.id != lb.id {
                Some(self.merge_customers(a, b, "review_accepted", actor, Some(c.rule.clone())).await?.0)
            } else {
                None
            };
            self.decide_candidate(id, "accepted", actor).await?;
            Ok(merge_id)
        } else {
            self.decide_candidate(id, "rejected", actor).await?;
            Ok(None)
        }
    }

    async fn decide_candidate(&self, id: Uuid, status: &str, actor: &str) -> StoreResult<()> {
        let tx = self.write().await?;
        merge_candidate::Entity::update_many()
            .col_expr(merge_candidate::Column::Status, Expr::value(status))
            .col_expr(merge_candidate::Column::DecidedAt, Expr::value(now()))
            .col_expr(merge_candidate::Column::DecidedBy, Expr::value(actor))
            .filter(merge_candidate::Column::Id.eq(id))
            .exec(&*tx.txn)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every source record's `(record id, live customer)`, for clustering evaluation.
    pub async fn record_clusters(&self) -> StoreResult<Vec<(String, Uuid)>> {
        let redirects: Vec<(Uuid, Option<Uuid>)> = customer::Entity::find()
            .select_only()
            .column(customer::Column::Id)
            .column(customer::Column::MergedInto)
            .filter(customer::Column::MergedInto.is_not_null())
            .into_tuple()
            .all(self.conn())
            .await?;
        let redirects: std::collections::HashMap<Uuid, Uuid> =
            redirects.into_iter().filter_map(|(a, b)| Some((a, b?))).collect();
        let rows: Vec<(Option<String>, Option<Uuid>)> = source_record::Entity::find()
            .select_only()
            .column(source_record::Column::ExternalId)
            .column(source_record::Column::CustomerId)
            .into_tuple()
            .all(self.conn())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (rid, cid) in rows {
            let (Some(rid), Some(mut c)) = (rid, cid) else { continue };
            let mut seen = HashSet::new();
            while let Some(next) = redirects.get(&c) {
                if !seen.insert(c) {
                    break;
                }
                c = *next;
            }
            out.push((rid, c));
        }
        Ok(out)
    }
}
