use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::error::{ApiError, ApiResult};
use super::types::{Customer, IdentityKind, PageInfo};
use super::{page_size, state};
use crate::identity::IdentityKey;
use crate::ids::CustomerId;
use crate::store::{Cursor, CustomerFilter, CustomerSort, PageRequest};

#[derive(Default)]
pub struct Query;

#[derive(InputObject, Default)]
pub struct CustomerFilterInput {
    /// Free text over name, email and phone.
    pub search: Option<String>,
    /// Exact email (normalised as on ingest).
    pub email: Option<String>,
    /// Exact phone (normalised as on ingest, national numbers in the likely regions).
    pub phone: Option<String>,
    pub tag: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum CustomerOrderField {
    #[default]
    CreatedAt,
    UpdatedAt,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum OrderDirection {
    Asc,
    #[default]
    Desc,
}

#[derive(InputObject, Default)]
pub struct CustomerOrder {
    #[graphql(default)]
    pub field: CustomerOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(SimpleObject)]
pub struct CustomerEdge {
    pub cursor: String,
    pub node: Customer,
}

/// A page of customers (Relay cursor connection).
pub struct CustomerConnection {
    edges: Vec<CustomerEdge>,
    page_info: PageInfo,
    filter: CustomerFilter,
}

#[Object]
impl CustomerConnection {
    async fn edges(&self) -> &[CustomerEdge] {
        &self.edges
    }
    async fn nodes(&self) -> Vec<&Customer> {
        self.edges.iter().map(|e| &e.node).collect()
    }
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }
    /// Customers matching the filter, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<u64> {
        Ok(state(ctx).store.count_customers(&self.filter).await.map_err(ApiError::from)?)
    }
}

pub(crate) fn parse_customer_id(id: &ID, arg: &str) -> Result<CustomerId, ApiError> {
    CustomerId::parse(id.as_str()).map_err(|_| ApiError::validation(arg, "not a customer id"))
}

fn parse_cursor(c: Option<String>, arg: &str) -> Result<Option<Cursor>, ApiError> {
    c.map(|c| Cursor::decode(&c).ok_or_else(|| ApiError::validation(arg, "not a cursor from this API"))).transpose()
}

/// Normalise an identity value exactly as ingestion does.
pub(crate) fn identity_key(
    ctx: &Context<'_>,
    kind: IdentityKind,
    value: &str,
    namespace: Option<String>,
    arg: &str,
) -> Result<IdentityKey, ApiError> {
    let extractor = &state(ctx).extractor;
    let kind: crate::identity::IdentityKind = kind.into();
    match kind {
        crate::identity::IdentityKind::Email => extractor.email_key(value).map_err(|m| ApiError::validation(arg, m)),
        crate::identity::IdentityKind::Phone => extractor
            .phone_key(value, extractor.hints(None, None, &[]))
            .map(|(k, _)| k)
            .map_err(|m| ApiError::validation(arg, m)),
        _ => {
            let namespace = namespace
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::validation("namespace", "required for external and device ids"))?;
            let value = value.trim();
            if value.is_empty() {
                return Err(ApiError::validation(arg, "must not be empty"));
            }
            Ok(IdentityKey { kind, namespace, value: value.to_string() })
        }
    }
}

#[Object]
impl Query {
    /// A customer by id. An id absorbed by a merge resolves to the survivor
    /// (`redirectedFrom` then holds the id asked for).
    async fn customer(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Customer>> {
        let id = parse_customer_id(&id, "id")?;
        let found = state(ctx).store.customer(id).await.map_err(ApiError::from)?;
        Ok(found.map(|(m, redirected)| Customer::single(&state(ctx).store, m, redirected)))
    }

    /// Customers, newest first by default, with filters and cursor pagination.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "first.or(last).unwrap_or(20).max(1) as usize * child_complexity + 1")]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<CustomerFilterInput>,
        order_by: Option<CustomerOrder>,
    ) -> ApiResult<CustomerConnection> {
        if first.is_some() && last.is_some() {
            return Err(ApiError::validation("last", "use either `first` or `last`, not both").into());
        }
        let limit = page_size(ctx, first, last, "first")?;
        let after = parse_cursor(after, "after")?;
        let before = parse_cursor(before, "before")?;
        let f = filter.unwrap_or_default();
        let mut store_filter = CustomerFilter {
            search: f.search,
            tag: f.tag,
            created_after: f.created_after,
            created_before: f.created_before,
            updated_after: f.updated_after,
            updated_before: f.updated_before,
            ..Default::default()
        };
        if let Some(e) = f.email {
            store_filter.email = Some(identity_key(ctx, IdentityKind::Email, &e, None, "filter.email")?.value);
        }
        if let Some(p) = f.phone {
            store_filter.phone = Some(identity_key(ctx, IdentityKind::Phone, &p, None, "filter.phone")?.value);
        }
        let order = order_by.unwrap_or_default();
        let sort = match order.field {
            CustomerOrderField::CreatedAt => CustomerSort::CreatedAt,
            CustomerOrderField::UpdatedAt => CustomerSort::UpdatedAt,
        };
        let backward = last.is_some();
        let page = state(ctx)
            .store
            .list_customers(
                &store_filter,
                sort,
                order.direction == OrderDirection::Desc,
                PageRequest { limit, after, before, backward },
            )
            .await
            .map_err(ApiError::from)?;
        let cursor_of = |m: &crate::store::entities::customer::Model| {
            let at = match sort {
                CustomerSort::CreatedAt => m.created_at,
                CustomerSort::UpdatedAt => m.updated_at,
            };
            Cursor { at, id: m.id }.encode()
        };
        let cursors: Vec<String> = page.items.iter().map(cursor_of).collect();
        let edges: Vec<CustomerEdge> = Customer::page(&state(ctx).store, page.items)
            .into_iter()
            .zip(cursors)
            .map(|(node, cursor)| CustomerEdge { cursor, node })
            .collect();
        let page_info = PageInfo {
            has_next_page: if backward { before.is_some() } else { page.has_more },
            has_previous_page: if backward { page.has_more } else { after.is_some() },
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        };
        Ok(CustomerConnection { edges, page_info, filter: store_filter })
    }

    /// The customer holding an identifier; the value is normalised as on ingest.
    async fn customer_by_identity(
        &self,
        ctx: &Context<'_>,
        kind: IdentityKind,
        value: String,
        namespace: Option<String>,
    ) -> ApiResult<Option<Customer>> {
        let key = identity_key(ctx, kind, &value, namespace, "value")?;
        let found = state(ctx).store.customer_by_identity(&key).await.map_err(ApiError::from)?;
        Ok(found.map(|m| Customer::single(&state(ctx).store, m, None)))
    }
}
