//! Writes for records that arrive through connectors: orders, timeline events, erasure.
//! Each takes the caller's write transaction so an inbox event's effects commit together
//! with marking it processed.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use super::customers::now;
use super::entities::{customer, event, identity, order, source_record};
use super::rows::insert_rows;
use super::{IngestOutcome, Store, StoreResult, WriteTx};
use crate::identity::{IdentityKey, KeyExtractor, Observation};
use crate::ids::{ConnectorId, CustomerId};

/// One version of an order, as a source record states it.
pub struct OrderWrite {
    pub external_id: String,
    pub status: Option<String>,
    pub currency: Option<String>,
    pub total_minor: Option<i64>,
    pub lines: Value,
    pub placed_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl OrderWrite {
    /// The stored row of a first version of the order from `connector`, owned by `customer`.
    pub fn new_row(self, connector: &str, customer: CustomerId, at: DateTime<Utc>) -> order::Model {
        order::Model {
            id: Uuid::now_v7(),
            customer_id: customer.0,
            connector_id: connector.to_string(),
            external_id: self.external_id,
            status: self.status,
            currency: self.currency,
            total_minor: self.total_minor,
            lines: self.lines,
            placed_at: self.placed_at.map(|t| t.trunc_subsecs(6)),
            source_updated_at: self.updated_at.map(|t| t.trunc_subsecs(6)),
            created_at: at,
            updated_at: at,
        }
    }

    /// Apply this version to the stored `row` (and give it to `customer`) unless it is
    /// older: an older version never overwrites a newer one, and a version without
    /// `updated_at` never overwrites one with it. Returns whether `row` changed.
    pub fn apply_to(self, row: &mut order::Model, customer: CustomerId, at: DateTime<Utc>) -> bool {
        let newer = match (self.updated_at, row.source_updated_at) {
            (Some(new), Some(old)) => new.trunc_subsecs(6) >= old,
            (None, Some(_)) => false,
            _ => true,
        };
        if newer {
            row.customer_id = customer.0;
            row.status = self.status;
            row.currency = self.currency;
            row.total_minor = self.total_minor;
            row.lines = self.lines;
            if self.placed_at.is_some() {
                row.placed_at = self.placed_at.map(|t| t.trunc_subsecs(6));
            }
            row.source_updated_at = self.updated_at.map(|t| t.trunc_subsecs(6));
            row.updated_at = at;
        }
        newer
    }
}

/// A timeline event to append.
pub struct TimelineEvent {
    pub customer: CustomerId,
    pub kind: String,
    pub source: String,
    pub at: DateTime<Utc>,
    pub properties: Value,
}

impl Store {
    /// Resolve and persist an observation inside `tx`.
    pub async fn ingest_tx(
        &self,
        tx: &WriteTx,
        extractor: &KeyExtractor,
        obs: &Observation,
        region: Option<&str>,
    ) -> StoreResult<IngestOutcome> {
        self.ingest_in(&tx.txn, extractor, obs, region, None).await
    }

    /// Insert or update an order; an older version (by the platform's `updated_at`) never
    /// overwrites a newer one. Returns true when the order is new.
    pub async fn upsert_order(
        &self,
        tx: &WriteTx,
        customer: CustomerId,
        connector: &str,
        o: OrderWrite,
    ) -> StoreResult<bool> {
        let existing = self.orders_by_source(tx, &[(connector, o.external_id.as_str())]).await?.pop();
        let at = now();
        match existing {
            None => {
                self.write_orders(tx, vec![o.new_row(connector, customer, at)], vec![]).await?;
                Ok(true)
            }
            Some(mut row) => {
                if o.apply_to(&mut row, customer, at) {
                    self.write_orders(tx, vec![], vec![row]).await?;
                }
                Ok(false)
            }
        }
    }

    /// Append a timeline event inside `tx`.
    pub async fn append_event(
        &self,
        tx: &WriteTx,
        customer: CustomerId,
        kind: &str,
        source: &str,
        at: DateTime<Utc>,
        properties: Value,
    ) -> StoreResult<()> {
        use super::entities::event;
        event::Entity::insert(event::ActiveModel {
            id: Set(Uuid::now_v7()),
            customer_id: Set(customer.0),
            kind: Set(kind.to_string()),
            source: Set(source.to_string()),
            occurred_at: Set(at.trunc_subsecs(6)),
            properties: Set(properties),
            created_at: Set(now()),
        })
        .exec_without_returning(&*tx.txn)
        .await?;
        Ok(())
    }

    /// The stored orders among `keys` (connector, external id), for a batch of order
    /// records to be folded in memory with the same rules as [`Store::upsert_order`].
    pub async fn orders_by_source(&self, tx: &WriteTx, keys: &[(&str, &str)]) -> StoreResult<Vec<order::Model>> {
        let mut by_connector: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (c, e) in keys {
            by_connector.entry(c).or_default().push(e);
        }
        let mut out = Vec::new();
        for (connector, ids) in by_connector {
            for chunk in ids.chunks(500) {
                out.extend(
                    order::Entity::find()
                        .filter(order::Column::ConnectorId.eq(connector))
                        .filter(order::Column::ExternalId.is_in(chunk.iter().copied()))
                        .all(&*tx.txn)
                        .await?,
                );
            }
        }
        Ok(out)
    }

    /// Write orders folded in memory: `new` ones inserted (several rows per statement),
    /// `changed` stored ones updated by primary key.
    pub async fn write_orders(
        &self,
        tx: &WriteTx,
        new: Vec<order::Model>,
        changed: Vec<order::Model>,
    ) -> StoreResult<()> {
        insert_rows(&tx.txn, new.into_iter().map(order::ActiveModel::from).collect(), "").await?;
        for row in changed {
            let mut m: order::ActiveModel = row.into();
            // Every column but the key and created_at may have moved.
            for col in [
                order::Column::CustomerId,
                order::Column::Status,
                order::Column::Currency,
                order::Column::TotalMinor,
                order::Column::Lines,
                order::Column::PlacedAt,
                order::Column::SourceUpdatedAt,
                order::Column::UpdatedAt,
            ] {
                sea_orm::ActiveModelTrait::reset(&mut m, col);
            }
            order::Entity::update(m).exec(&*tx.txn).await?;
        }
        Ok(())
    }

    /// Append timeline events inside `tx` (several rows per statement), in order.
    pub async fn append_events(&self, tx: &WriteTx, events: Vec<TimelineEvent>) -> StoreResult<()> {
        let at = now();
        let rows: Vec<event::ActiveModel> = events
            .into_iter()
            .map(|e| event::ActiveModel {
                id: Set(Uuid::now_v7()),
                customer_id: Set(e.customer.0),
                kind: Set(e.kind),
                source: Set(e.source),
                occurred_at: Set(e.at.trunc_subsecs(6)),
                properties: Set(e.properties),
                created_at: Set(at),
            })
            .collect();
        insert_rows(&tx.txn, rows, "").await
    }

    /// The live customers holding any of `keys`.
    pub async fn customers_holding(&self, tx: &WriteTx, keys: &[IdentityKey]) -> StoreResult<Vec<CustomerId>> {
        let mut out = Vec::new();
        for k in keys {
            let row = identity::Entity::find().filter(super::customers::key_condition(&[k])).one(&*tx.txn).await?;
            if let Some(r) = row {
                let id = CustomerId(r.customer_id);
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Erase customers entirely inside `tx` (everything attached is deleted or cascades).
    pub async fn erase_customers_tx(&self, tx: &WriteTx, ids: &[CustomerId]) -> StoreResult<()> {
        for id in ids {
            let absorbed: Vec<Uuid> = customer::Entity::find()
                .filter(customer::Column::MergedInto.eq(id.0))
                .all(&*tx.txn)
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect();
            let mut doomed = absorbed;
            doomed.push(id.0);
            super::customers::delete_attached_rows(&tx.txn, &doomed).await?;
            customer::Entity::update_many()
                .col_expr(customer::Column::MergedInto, Expr::value(Option::<Uuid>::None))
                .filter(customer::Column::Id.is_in(doomed.clone()))
                .exec(&*tx.txn)
                .await?;
            customer::Entity::delete_many().filter(customer::Column::Id.is_in(doomed)).exec(&*tx.txn).await?;
        }
        Ok(())
    }

    /// Erase what one connector brought in: its source records, and customers left with no
    /// source record at all.
    pub async fn erase_connector_data(&self, tx: &WriteTx, connector: ConnectorId) -> StoreResult<u64> {
        let touched: Vec<Uuid> = source_record::Entity::find()
            .filter(source_record::Column::ConnectorId.eq(connector.0))
            .all(&*tx.txn)
            .await?
            .into_iter()
            .filter_map(|r| r.customer_id)
            .collect();
        source_record::Entity::delete_many()
            .filter(source_record::Column::ConnectorId.eq(connector.0))
            .exec(&*tx.txn)
            .await?;
        identity::Entity::delete_many()
            .filter(identity::Column::SourceConnector.eq(connector.to_string()))
            .exec(&*tx.txn)
            .await?;
        let mut erased = 0;
        for c in touched {
            let left =
                source_record::Entity::find().filter(source_record::Column::CustomerId.eq(c)).one(&*tx.txn).await?;
            if left.is_none() {
                self.erase_customers_tx(tx, &[CustomerId(c)]).await?;
                erased += 1;
            } else {
                self.recompute(&tx.txn, CustomerId(c), now()).await?;
            }
        }
        self.purge_inbox(tx, connector).await?;
        Ok(erased)
    }
}
