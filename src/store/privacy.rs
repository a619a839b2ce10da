//! Data-subject rights: consents (most restrictive wins on merge), a full export of what is
//! held about a person, and erasure everywhere with a receipt of non-personal ids and counts.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Statement};
use serde_json::{json, Value};
use uuid::Uuid;

use super::audit::AuditEntry;
use super::customers::now;
use super::entities::{consent, customer, erasure_receipt, event, merge, order, source_record};
use super::{ph, Store, StoreError, StoreResult};
use crate::ids::CustomerId;

pub const GRANTED: &str = "granted";
pub const DENIED: &str = "denied";

impl Store {
    /// Record consent for a purpose on a channel (the newest statement wins).
    pub async fn set_consent(
        &self,
        id: CustomerId,
        purpose: &str,
        channel: &str,
        granted: bool,
        source: &str,
    ) -> StoreResult<(CustomerId, consent::Model)> {
        let (live, _) = self.customer(id).await?.ok_or(StoreError::NotFound)?;
        let model = consent::Model {
            customer_id: live.id,
            purpose: purpose.to_string(),
            channel: channel.to_string(),
            status: if granted { GRANTED } else { DENIED }.to_string(),
            source: source.to_string(),
            recorded_at: now(),
        };
        let tx = self.write().await?;
        consent::Entity::insert(consent::ActiveModel::from(model.clone()))
            .on_conflict(
                OnConflict::columns([consent::Column::CustomerId, consent::Column::Purpose, consent::Column::Channel])
                    .update_columns([consent::Column::Status, consent::Column::Source, consent::Column::RecordedAt])
                    .to_owned(),
            )
            .exec_without_returning(&*tx.txn)
            .await?;
        tx.commit().await?;
        Ok((CustomerId(live.id), model))
    }

    pub async fn consents_of(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Vec<consent::Model>>> {
        let rows = consent::Entity::find()
            .filter(consent::Column::CustomerId.is_in(ids.iter().copied()))
            .order_by_asc(consent::Column::Purpose)
            .order_by_asc(consent::Column::Channel)
            .all(self.conn())
            .await?;
        let mut out: HashMap<Uuid, Vec<consent::Model>> = HashMap::new();
        for r in rows {
            out.entry(r.customer_id).or_default().push(r);
        }
        Ok(out)
    }

    /// Which of `ids` hold consents.
    pub(crate) async fn customers_with_consents(
        &self,
        txn: &DatabaseTransaction,
        ids: &[Uuid],
    ) -> StoreResult<Vec<CustomerId>> {
        use sea_orm::QuerySelect;
        let mut out = Vec::new();
        if ids.is_empty() {
            return Ok(out);
        }
        for chunk in super::shapes::padded_in(ids, 256) {
            let held: Vec<Uuid> = consent::Entity::find()
                .select_only()
                .column(consent::Column::CustomerId)
                .distinct()
                .filter(consent::Column::CustomerId.is_in(chunk))
                .into_tuple()
                .all(txn)
                .await?;
            out.extend(held.into_iter().map(CustomerId));
        }
        Ok(out)
    }

    /// On merge, move the absorbed customer's consents to the survivor; where both hold one
    /// for the same purpose and channel, the most restrictive (denied) wins.
    pub(crate) async fn merge_consents(
        &self,
        txn: &DatabaseTransaction,
        survivor: CustomerId,
        absorbed: CustomerId,
    ) -> StoreResult<()> {
        let theirs = consent::Entity::find().filter(consent::Column::CustomerId.eq(absorbed.0)).all(txn).await?;
        if theirs.is_empty() {
            return Ok(());
        }
        let ours = consent::Entity::find().filter(consent::Column::CustomerId.eq(survivor.0)).all(txn).await?;
        consent::Entity::delete_many().filter(consent::Column::CustomerId.eq(absorbed.0)).exec(txn).await?;
        for t in theirs {
            let existing = ours.iter().find(|o| o.purpose == t.purpose && o.channel == t.channel);
            let merged = match existing {
                None => consent::Model { customer_id: survivor.0, ..t },
                Some(o) if o.status == DENIED => continue,
                Some(_) if t.status == DENIED => consent::Model { customer_id: survivor.0, ..t.clone() },
                Some(o) => consent::Model { recorded_at: o.recorded_at.max(t.recorded_at), ..o.clone() },
            };
            consent::Entity::insert(consent::ActiveModel::from(merged))
                .on_conflict(
                    OnConflict::columns([
                        consent::Column::CustomerId,
                        consent::Column::Purpose,
                        consent::Column::Channel,
                    ])
                    .update_columns([consent::Column::Status, consent::Column::Source, consent::Column::RecordedAt])
                    .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }

    /// Everything held about a person, as JSON.
    pub async fn export_customer(&self, id: CustomerId) -> StoreResult<Value> {
        let (c, _) = self.customer(id).await?.ok_or(StoreError::NotFound)?;
        let cluster: Vec<Uuid> = std::iter::once(c.id)
            .chain(
                customer::Entity::find()
                    .filter(customer::Column::MergedInto.eq(c.id))
                    .all(self.conn())
                    .await?
                    .into_iter()
                    .map(|a| a.id),
            )
            .collect();
        let ids = [c.id];
        let identities = self.identities_of(&ids).await?.remove(&c.id).unwrap_or_default();
        let tags = self.tags_of(&ids).await?.remove(&c.id).unwrap_or_default();
        let orders = self.orders_of(&ids).await?.remove(&c.id).unwrap_or_default();
        let consents = self.consents_of(&ids).await?.remove(&c.id).unwrap_or_default();
        let events = event::Entity::find()
            .filter(event::Column::CustomerId.eq(c.id))
            .order_by_asc(event::Column::OccurredAt)
            .all(self.conn())
            .await?;
        let sources = source_record::Entity::find()
            .filter(source_record::Column::CustomerId.eq(c.id))
            .order_by_asc(source_record::Column::ReceivedAt)
            .all(self.conn())
            .await?;
        let merges = merge::Entity::find()
            .filter(
                merge::Column::SurvivorId.is_in(cluster.clone()).or(merge::Column::AbsorbedId.is_in(cluster.clone())),
            )
            .all(self.conn())
            .await?;
        Ok(json!({
            "customer": {
                "id": CustomerId(c.id).to_string(), "givenName": c.given_name, "familyName": c.family_name, "fullName": c.full_name,
                "email": c.primary_email, "phone": c.primary_phone, "addresses": c.addresses, "traits": c.traits,
                "lifecycleStage": c.lifecycle_stage, "createdAt": c.created_at, "updatedAt": c.updated_at,
                "absorbedIds": cluster.iter().skip(1).map(|u| CustomerId(*u).to_string()).collect::<Vec<_>>(),
            },
            "identities": identities.iter().map(|i| json!({"kind": i.kind, "namespace": i.namespace, "value": i.value, "raw": i.raw,
                "status": i.status, "firstSeen": i.first_seen, "lastSeen": i.last_seen})).collect::<Vec<_>>(),
            "tags": tags,
            "consents": consents.iter().map(|k| json!({"purpose": k.purpose, "channel": k.channel, "status": k.status, "source": k.source, "recordedAt": k.recorded_at})).collect::<Vec<_>>(),
            "orders": orders.iter().map(|o| json!({"externalId": o.external_id, "source": o.connector_id, "status": o.status, "currency": o.currency,
                "totalMinor": o.total_minor, "lines": o.lines, "placedAt": o.placed_at})).collect::<Vec<_>>(),
            "events": events.iter().map(|e| json!({"type": e.kind, "source": e.source, "occurredAt": e.occurred_at, "properties": e.properties})).collect::<Vec<_>>(),
            "sourceRecords": sources.iter().map(|s| json!({"source": s.source, "kind": s.record_kind, "recordId": s.external_id, "receivedAt": s.received_at, "payload": s.payload})).collect::<Vec<_>>(),
            "merges": merges.iter().map(|m| json!({"survivor": CustomerId(m.survivor_id).to_string(), "absorbed": CustomerId(m.absorbed_id).to_string(), "rule": m.rule, "at": m.created_at, "undoneAt": m.undone_at})).collect::<Vec<_>>(),
        }))
    }

    /// Erase a person everywhere and keep a receipt (ids and counts only). Returns the receipt.
    pub async fn erase_customer(&self, id: CustomerId, actor: &str) -> StoreResult<erasure_receipt::Model> {
        let tx = self.write().await?;
        let (live, _) = {
            let mut current = id.0;
            let mut found = None;
            for _ in 0..32 {
                let row = customer::Entity::find_by_id(current).one(&*tx.txn).await?.ok_or(StoreError::NotFound)?;
                match row.merged_into {
                    Some(n) => current = n,
                    None => {
                        found = Some(row);
                        break;
                    }
                }
            }
            (found.ok_or(StoreError::NotFound)?, ())
        };
        let mut cluster: Vec<Uuid> = vec![live.id];
        cluster.extend(
            customer::Entity::find()
                .filter(customer::Column::MergedInto.eq(live.id))
                .all(&*tx.txn)
                .await?
                .into_iter()
                .map(|c| c.id),
        );
        let b = self.backend();
        let count = |table: &str, col: &str| format!("SELECT COUNT(*) AS n FROM {table} WHERE {col} = {}", ph(b, 1));
        let mut counts = serde_json::Map::new();
        for (name, table, col) in [
            ("identities", "identities", "customer_id"),
            ("events", "events", "customer_id"),
            ("orders", "orders", "customer_id"),
            ("sourceRecords", "source_records", "customer_id"),
            ("consents", "consents", "customer_id"),
        ] {
            let row = tx.txn.query_one(Statement::from_sql_and_values(b, count(table, col), [live.id.into()])).await?;
            counts.insert(name.into(), json!(row.and_then(|r| r.try_get::<i64>("", "n").ok()).unwrap_or(0)));
        }
        // Stored webhook payloads that carried this person: keep the dedupe key, drop the content.
        let inbox_ids: Vec<Uuid> = source_record::Entity::find()
            .filter(source_record::Column::CustomerId.is_in(cluster.clone()))
            .all(&*tx.txn)
            .await?
            .into_iter()
            .filter_map(|s| s.inbox_id)
            .collect();
        for chunk in inbox_ids.chunks(500) {
            let list = (0..chunk.len()).map(|i| ph(b, i + 4)).collect::<Vec<_>>().join(", ");
            let mut values: Vec<sea_orm::Value> = vec![Vec::<u8>::new().into(), json!([]).into(), json!([]).into()];
            values.extend(chunk.iter().map(|u| sea_orm::Value::from(*u)));
            tx.txn
                .execute(Statement::from_sql_and_values(
                    b,
                    format!(
                        "UPDATE inbox SET body = {}, headers = {}, query = {}, status = 'erased' WHERE id IN ({list})",
                        ph(b, 1),
                        ph(b, 2),
                        ph(b, 3)
                    ),
                    values,
                ))
                .await?;
        }
        counts.insert("webhookPayloads".into(), json!(inbox_ids.len()));
        super::customers::delete_attached_rows(&tx.txn, &cluster).await?;
        order::Entity::delete_many().filter(order::Column::CustomerId.is_in(cluster.clone())).exec(&*tx.txn).await?;
        // The merge ledger keeps ids only.
        merge::Entity::update_many()
            .col_expr(merge::Column::Evidence, Expr::value(json!([])))
            .col_expr(merge::Column::Reason, Expr::value(Option::<String>::None))
            .col_expr(merge::Column::Moved, Expr::value(Option::<Value>::None))
            .filter(
                merge::Column::SurvivorId.is_in(cluster.clone()).or(merge::Column::AbsorbedId.is_in(cluster.clone())),
            )
            .exec(&*tx.txn)
            .await?;
        self.delete_review_candidates(&tx, &cluster).await?;
        customer::Entity::update_many()
            .col_expr(customer::Column::MergedInto, Expr::value(Option::<Uuid>::None))
            .filter(customer::Column::Id.is_in(cluster.clone()))
            .exec(&*tx.txn)
            .await?;
        customer::Entity::delete_many().filter(customer::Column::Id.is_in(cluster.clone())).exec(&*tx.txn).await?;
        let receipt = erasure_receipt::Model {
            id: Uuid::now_v7(),
            customer_id: live.id,
            actor: actor.to_string(),
            erased_at: now(),
            counts: Value::Object(counts.clone()),
        };
        erasure_receipt::Entity::insert(erasure_receipt::ActiveModel::from(receipt.clone()))
            .exec_without_returning(&*tx.txn)
            .await?;
        self.audit_tx(
            &tx,
            AuditEntry {
                actor,
                action: "customer.erase",
                target: Some(CustomerId(live.id).to_string()),
                result: "ok",
                details: json!({"receipt": receipt.id.simple().to_string(), "counts": counts, "absorbed": cluster.len() - 1}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(receipt)
    }

    /// Review candidates mentioning these customers (their evidence holds personal data).
    async fn delete_review_candidates(&self, tx: &super::WriteTx, ids: &[Uuid]) -> StoreResult<()> {
        use super::entities::merge_candidate;
        merge_candidate::Entity::delete_many()
            .filter(
                merge_candidate::Column::CustomerA
                    .is_in(ids.iter().copied())
                    .or(merge_candidate::Column::CustomerB.is_in(ids.iter().copied())),
            )
            .exec(&*tx.txn)
            .await?;
        Ok(())
    }
}
