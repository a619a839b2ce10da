//! GraphQL object types: the product's view of a customer, not a mirror of tables.

use async_graphql::{ComplexObject, Context, Enum, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::loaders::PageBatch;
use super::page_size;
use crate::identity::IdentityKind as DomainKind;
use crate::ids::{CustomerId, EventId, IdentityId, OrderId};
use crate::store::entities::{customer, event, identity, order};
use crate::store::Cursor;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum IdentityKind {
    Email,
    Phone,
    ExternalId,
    Device,
}

impl From<IdentityKind> for DomainKind {
    fn from(k: IdentityKind) -> Self {
        match k {
            IdentityKind::Email => DomainKind::Email,
            IdentityKind::Phone => DomainKind::Phone,
            IdentityKind::ExternalId => DomainKind::ExternalId,
            IdentityKind::Device => DomainKind::Device,
        }
    }
}

impl From<DomainKind> for IdentityKind {
    fn from(k: DomainKind) -> Self {
        match k {
            DomainKind::Email => IdentityKind::Email,
            DomainKind::Phone => IdentityKind::Phone,
            DomainKind::ExternalId => IdentityKind::ExternalId,
            DomainKind::Device => IdentityKind::Device,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum IdentityStatus {
    Active,
    SetAside,
}

/// One identifier known for a customer.
pub struct Identity(pub identity::Model);

impl Identity {
    fn masked(&self, ctx: &Context<'_>, v: &str) -> String {
        if super::sees_pii(ctx) {
            return v.to_string();
        }
        match self.0.kind.as_str() {
            "email" => crate::access::mask_email(v),
            "phone" => crate::access::mask_phone(v),
            _ => v.to_string(),
        }
    }
}

#[Object]
impl Identity {
    async fn id(&self) -> ID {
        ID(IdentityId(self.0.id).to_string())
    }
    async fn kind(&self) -> IdentityKind {
        DomainKind::parse(&self.0.kind).unwrap_or(DomainKind::ExternalId).into()
    }
    /// The normalised value that identities match on (canonical email, E.164 phone).
    /// Masked for callers without the `pii` permission.
    async fn value(&self, ctx: &Context<'_>) -> String {
        self.masked(ctx, &self.0.value)
    }
    /// The value as the source wrote it (masked without `pii`).
    async fn raw(&self, ctx: &Context<'_>) -> Option<String> {
        self.0.raw.as_deref().map(|r| self.masked(ctx, r))
    }
    /// For external and device ids: the namespace (connector) they belong to.
    async fn namespace(&self) -> Option<&str> {
        Some(self.0.namespace.as_str()).filter(|n| !n.is_empty())
    }
    async fn source_connector(&self) -> Option<&str> {
        self.0.source_connector.as_deref()
    }
    async fn status(&self) -> IdentityStatus {
        if self.0.status == "set_aside" {
            IdentityStatus::SetAside
        } else {
            IdentityStatus::Active
        }
    }
    async fn set_aside_reason(&self) -> Option<&str> {
        self.0.set_aside_reason.as_deref()
    }
    async fn first_seen(&self) -> DateTime<Utc> {
        self.0.first_seen
    }
    async fn last_seen(&self) -> DateTime<Utc> {
        self.0.last_seen
    }
}

#[derive(SimpleObject, Clone)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
}

impl From<junction_connectors::Address> for Address {
    fn from(a: junction_connectors::Address) -> Self {
        Self {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            region: a.region,
            postcode: a.postcode,
            country: a.country,
        }
    }
}

/// A timeline entry.
pub struct Event(pub event::Model);

#[Object]
impl Event {
    async fn id(&self) -> ID {
        ID(EventId(self.0.id).to_string())
    }
    /// What happened (`order_placed`, `message_received`, `page_view`, …).
    #[graphql(name = "type")]
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn properties(&self) -> Json<Value> {
        Json(self.0.properties.clone())
    }
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct EventEdge {
    pub cursor: String,
    pub node: Event,
}

#[derive(SimpleObject)]
pub struct EventConnection {
    pub edges: Vec<EventEdge>,
    pub page_info: PageInfo,
}

/// Money in minor units, with its currency.
#[derive(SimpleObject)]
pub struct Money {
    /// Amount in the currency's minor unit (cents).
    pub amount_minor: i64,
    pub currency: String,
    /// Decimal string, e.g. `19.99`.
    pub amount: String,
}

/// An order or sale from a shop, POS or payment platform.
pub struct Order(pub order::Model);

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(OrderId(self.0.id).to_string())
    }
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }
    async fn source(&self) -> &str {
        &self.0.connector_id
    }
    async fn status(&self) -> Option<&str> {
        self.0.status.as_deref()
    }
    async fn total(&self) -> Option<Money> {
        let (minor, cur) = (self.0.total_minor?, self.0.currency.clone()?);
        let exp = junction_connectors::Currency::parse(&cur).map(|c| c.exponent()).unwrap_or(2);
        let div = 10_i64.pow(exp);
        let sign = if minor < 0 { "-" } else { "" };
        let amount = if exp == 0 {
            format!("{minor}")
        } else {
            format!("{sign}{}.{:0width$}", (minor / div).abs(), (minor % div).abs(), width = exp as usize)
        };
        Some(Money { amount_minor: minor, currency: cur, amount })
    }
    async fn lines(&self) -> Json<Value> {
        Json(self.0.lines.clone())
    }
    async fn placed_at(&self) -> Option<DateTime<Utc>> {
        self.0.placed_at
    }
}

/// One real person: the golden record assembled from every source.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Customer {
    #[graphql(skip)]
    pub model: customer::Model,
    #[graphql(skip)]
    batch: std::sync::Arc<PageBatch>,
    /// Set when the id asked for was absorbed by a merge: the id that was asked for.
    pub redirected_from: Option<ID>,
}

impl Customer {
    /// One customer on its own.
    pub fn single(store: &crate::store::Store, model: customer::Model, redirected_from: Option<CustomerId>) -> Self {
        let batch = PageBatch::new(store.clone(), vec![model.id]);
        Self { model, batch, redirected_from: redirected_from.map(|r| ID(r.to_string())) }
    }

    /// Several customers that load their relations together.
    pub fn page(store: &crate::store::Store, models: Vec<customer::Model>) -> Vec<Self> {
        let batch = PageBatch::new(store.clone(), models.iter().map(|m| m.id).collect());
        models.into_iter().map(|model| Self { model, batch: batch.clone(), redirected_from: None }).collect()
    }
}

#[ComplexObject]
impl Customer {
    async fn id(&self) -> ID {
        ID(CustomerId(self.model.id).to_string())
    }
    async fn given_name(&self) -> Option<&str> {
        self.model.given_name.as_deref()
    }
    async fn family_name(&self) -> Option<&str> {
        self.model.family_name.as_deref()
    }
    /// Full name as best known (the source's full name, else given + family).
    async fn full_name(&self) -> Option<&str> {
        self.model.full_name.as_deref()
    }
    /// The most recently seen email address (masked without the `pii` permission).
    async fn email(&self, ctx: &Context<'_>) -> Option<String> {
        let e = self.model.primary_email.as_deref()?;
        Some(if super::sees_pii(ctx) { e.to_string() } else { crate::access::mask_email(e) })
    }
    /// The most recently seen phone number, E.164 (masked without `pii`).
    async fn phone(&self, ctx: &Context<'_>) -> Option<String> {
        let p = self.model.primary_phone.as_deref()?;
        Some(if super::sees_pii(ctx) { p.to_string() } else { crate::access::mask_phone(p) })
    }
    /// Postal addresses, most recent first (street lines and postcode hidden without `pii`).
    async fn addresses(&self, ctx: &Context<'_>) -> Vec<Address> {
        let pii = super::sees_pii(ctx);
        serde_json::from_value::<Vec<junction_connectors::Address>>(self.model.addresses.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                let mut a = Address::from(a);
                if !pii {
                    a.line1 = a.line1.map(|_| "***".into());
                    a.line2 = a.line2.map(|_| "***".into());
                    a.postcode = a.postcode.map(|_| "***".into());
                }
                a
            })
            .collect()
    }
    /// Consent per purpose and channel.
    async fn consents(&self) -> ApiResult<Vec<super::access::Consent>> {
        let rows = self.batch.consents(self.model.id).await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
    /// Free-form attributes merged from every source (most recent value per key).
    async fn traits(&self) -> Json<Value> {
        Json(self.model.traits.clone())
    }
    async fn lifecycle_stage(&self) -> Option<&str> {
        self.model.lifecycle_stage.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
    async fn tags(&self) -> ApiResult<Vec<String>> {
        Ok(self.batch.tags(self.model.id).await.map_err(ApiError::from)?)
    }
    /// Every identifier known for this person.
    async fn identities(&self) -> ApiResult<Vec<Identity>> {
        let rows = self.batch.identities(self.model.id).await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Identity).collect())
    }
    /// Merges this customer took part in (as survivor or absorbed), newest first.
    async fn merge_history(&self, ctx: &Context<'_>) -> ApiResult<Vec<super::merges::Merge>> {
        let rows = super::state(ctx).store.merge_history(CustomerId(self.model.id)).await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(super::merges::Merge).collect())
    }
    /// Orders, newest first.
    async fn orders(&self) -> ApiResult<Vec<Order>> {
        let rows = self.batch.orders(self.model.id).await.map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Order).collect())
    }
    /// The timeline, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity + 1")]
    async fn events(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> ApiResult<EventConnection> {
        let limit = page_size(ctx, first, None, "first")?;
        let before = match after {
            Some(c) => {
                Some(Cursor::decode(&c).ok_or_else(|| ApiError::validation("after", "not a cursor from this API"))?)
            }
            None => None,
        };
        let mut rows = self.batch.events(self.model.id, limit, before).await.map_err(ApiError::from)?;
        let has_next_page = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let edges: Vec<EventEdge> = rows
            .into_iter()
            .map(|e| EventEdge { cursor: Cursor { at: e.occurred_at, id: e.id }.encode(), node: Event(e) })
            .collect();
        Ok(EventConnection {
            page_info: PageInfo {
                has_next_page,
                has_previous_page: before.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }
}
