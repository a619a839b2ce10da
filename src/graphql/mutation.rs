use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::query::parse_customer_id;
use super::state;
use super::types::{Customer, Event, IdentityKind};
use crate::identity::{Observation, Profile, RawIdentifier, SourceRef};
use crate::ids::CustomerId;
use crate::store::{CustomerPatch, NewEvent};
use crate::ChangeKind;

#[derive(Default)]
pub struct Mutation;

#[derive(InputObject)]
pub struct IdentityInput {
    pub kind: IdentityKind,
    pub value: String,
    /// Required for external and device ids (e.g. the connector or app they come from).
    pub namespace: Option<String>,
}

#[derive(InputObject, Default)]
pub struct AddressInput {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
}

#[derive(InputObject)]
pub struct UpsertCustomerInput {
    /// At least one; the customer already holding any of them is updated.
    pub identities: Vec<IdentityInput>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    pub address: Option<AddressInput>,
    /// ISO-3166 alpha-2; helps read national phone numbers.
    pub country: Option<String>,
    pub traits: Option<Json<Value>>,
    pub tags: Option<Vec<String>>,
    /// When this was true at the source (defaults to now).
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct RejectedIdentifier {
    pub kind: IdentityKind,
    pub reason: String,
}

#[derive(SimpleObject)]
pub struct UpsertCustomerPayload {
    pub customer: Customer,
    /// True when no existing customer held any of the identities.
    pub created: bool,
    /// Customers merged into this one because the input linked them.
    pub merged_ids: Vec<ID>,
    /// Identifiers that were not usable (junk, invalid, ambiguous phone), with reasons.
    pub rejected_identifiers: Vec<RejectedIdentifier>,
}

#[derive(InputObject, Default)]
pub struct UpdateCustomerInput {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub lifecycle_stage: Option<String>,
    /// Keys to set; a null value removes nothing (sources may set it again).
    pub traits: Option<Json<Value>>,
    pub add_tags: Option<Vec<String>>,
    pub remove_tags: Option<Vec<String>>,
}

#[derive(SimpleObject)]
pub struct DeleteCustomerPayload {
    pub deleted_id: ID,
}

#[derive(InputObject)]
pub struct AddEventInput {
    /// What happened, e.g. `page_view`, `signed_up`.
    #[graphql(name = "type")]
    pub kind: String,
    pub properties: Option<Json<Value>>,
    pub occurred_at: Option<DateTime<Utc>>,
    /// Defaults to `api`.
    pub source: Option<String>,
}

fn traits_map(v: Option<Json<Value>>, arg: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    match v.map(|j| j.0) {
        None | Some(Value::Null) => Ok(Default::default()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(ApiError::validation(arg, "must be a JSON object")),
    }
}

fn clean_tags(tags: Option<Vec<String>>, arg: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for t in tags.unwrap_or_default() {
        let t = t.trim();
        if t.is_empty() || t.len() > 64 {
            return Err(ApiError::validation(arg, "tags are 1 to 64 characters"));
        }
        if !out.iter().any(|o: &String| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

#[Object]
impl Mutation {
    /// Create a customer, or update the one that already holds one of the identities.
    async fn upsert_customer(&self, ctx: &Context<'_>, input: UpsertCustomerInput) -> ApiResult<UpsertCustomerPayload> {
        let st = state(ctx);
        if input.identities.is_empty() {
            return Err(ApiError::validation("input.identities", "at least one identity is required").into());
        }
        let mut identifiers = Vec::new();
        for (i, id) in input.identities.into_iter().enumerate() {
            let kind: crate::identity::IdentityKind = id.kind.into();
            if kind.is_namespaced() && id.namespace.as_deref().map(str::trim).unwrap_or("").is_empty() {
                return Err(ApiError::validation(
                    format!("input.identities[{i}].namespace"),
                    "required for external and device ids",
                )
                .into());
            }
            identifiers.push(RawIdentifier { kind, namespace: id.namespace, value: id.value });
        }
        let country = input.country.or_else(|| input.address.as_ref().and_then(|a| a.country.clone()));
        if let Some(c) = &country {
            if c.trim().len() != 2 {
                return Err(ApiError::validation("input.country", "an ISO-3166 alpha-2 code").into());
            }
        }
        let obs = Observation {
            source: SourceRef { source: "graphql".into(), connector_id: None, namespace: "api".into(), inbox_id: None },
            record_id: None,
            record_kind: "customer".into(),
            identifiers,
            profile: Profile {
                given_name: input.given_name,
                family_name: input.family_name,
                full_name: input.full_name,
                birth_date: input.birth_date,
                address: input.address.map(|a| junction_connectors::Address {
                    line1: a.line1,
                    line2: a.line2,
                    city: a.city,
                    region: a.region,
                    postcode: a.postcode,
                    country: a.country,
                }),
                country: country.map(|c| c.trim().to_ascii_uppercase()),
            },
            traits: traits_map(input.traits, "input.traits")?,
            tags: clean_tags(input.tags, "input.tags")?,
            occurred_at: Some(input.occurred_at.unwrap_or_else(Utc::now)),
        };
        // Refuse before writing when no identifier is usable: nothing to attach the record to.
        let preview = st.extractor.extract(&obs, None);
        if preview.keys.is_empty() && preview.deferred_phones.is_empty() {
            let reasons: Vec<String> =
                preview.rejected.iter().map(|r| format!("{}: {}", r.kind.as_str(), r.reason)).collect();
            return Err(ApiError::validation(
                "input.identities",
                format!("no usable identifier ({})", reasons.join("; ")),
            )
            .into());
        }
        let outcome = st.store.ingest(&st.extractor, &obs, None).await.map_err(ApiError::from)?;
        if outcome.created && outcome.rejected.len() == obs.identifiers.len() {
            // Only deferred phones that then failed: nothing identified the person.
            tracing::debug!("customer created without identifiers");
        }
        let (model, _) = st
            .store
            .customer(outcome.customer_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("customer"))?;
        for m in &outcome.merged {
            st.notify(*m, ChangeKind::Merged);
        }
        st.notify(outcome.customer_id, if outcome.created { ChangeKind::Created } else { ChangeKind::Updated });
        Ok(UpsertCustomerPayload {
            customer: Customer::single(&st.store, model, None),
            created: outcome.created,
            merged_ids: outcome.merged.iter().map(|m| ID(m.to_string())).collect(),
            rejected_identifiers: outcome
                .rejected
                .into_iter()
                .map(|r| RejectedIdentifier { kind: r.kind.into(), reason: r.reason })
                .collect(),
        })
    }

    /// Edit a customer's descriptive fields and tags.
    async fn update_customer(&self, ctx: &Context<'_>, id: ID, input: UpdateCustomerInput) -> ApiResult<Customer> {
        let st = state(ctx);
        let id = parse_customer_id(&id, "id")?;
        let patch = CustomerPatch {
            given_name: input.given_name,
            family_name: input.family_name,
            full_name: input.full_name,
            lifecycle_stage: input.lifecycle_stage,
            traits: traits_map(input.traits, "input.traits")?,
            add_tags: clean_tags(input.add_tags, "input.addTags")?,
            remove_tags: clean_tags(input.remove_tags, "input.removeTags")?,
        };
        let live = st.store.update_customer(&st.extractor, id, patch).await.map_err(ApiError::from)?;
        let (model, _) =
            st.store.customer(live).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("customer"))?;
        st.notify(live, ChangeKind::Updated);
        Ok(Customer::single(&st.store, model, (live != id).then_some(id)))
    }

    /// Delete a customer and everything attached to it.
    async fn delete_customer(&self, ctx: &Context<'_>, id: ID) -> ApiResult<DeleteCustomerPayload> {
        let st = state(ctx);
        let id = parse_customer_id(&id, "id")?;
        let deleted = st.store.delete_customer(id).await.map_err(ApiError::from)?;
        st.notify(deleted, ChangeKind::Deleted);
        super::audit(ctx, "customer.delete", Some(deleted.to_string()), serde_json::json!({})).await?;
        Ok(DeleteCustomerPayload { deleted_id: ID(deleted.to_string()) })
    }

    /// Append an event to a customer's timeline.
    async fn add_event(&self, ctx: &Context<'_>, customer_id: ID, input: AddEventInput) -> ApiResult<Event> {
        let st = state(ctx);
        let id: CustomerId = parse_customer_id(&customer_id, "customerId")?;
        let kind = input.kind.trim().to_string();
        if kind.is_empty() || kind.len() > 100 {
            return Err(ApiError::validation("input.type", "1 to 100 characters").into());
        }
        let properties = Value::Object(traits_map(input.properties, "input.properties")?);
        let event = st
            .store
            .add_event(NewEvent {
                customer_id: id,
                kind,
                source: input.source.unwrap_or_else(|| "api".into()),
                occurred_at: input.occurred_at.unwrap_or_else(Utc::now),
                properties,
            })
            .await
            .map_err(ApiError::from)?;
        st.notify(CustomerId(event.customer_id), ChangeKind::Updated);
        Ok(Event(event))
    }
}
