//! Shopify webhooks.
//!
//! Signature: `X-Shopify-Hmac-Sha256` (the newer Events deliveries send it lower-case and
//! without the `X-`: `shopify-hmac-sha256`) = base64 HMAC-SHA256 of the raw body, keyed with
//! the app's client secret. Nothing time-related is signed, so there is no replay window;
//! deduplication on the event id absorbs replays of a delivery.
//!
//! Event id: `X-Shopify-Event-Id` (the event behind the delivery, the key Shopify recommends
//! for ignoring duplicates), else `X-Shopify-Webhook-Id` (the delivery, stable across its
//! retries), else a hash of the body.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payload::{
    address, body_hash_id, clean, country_code, field, from_json, money_decimal, push_unique, rfc3339,
};
use crate::registry::object_schema;
use crate::signature::{encode_base64, hmac, verify_text, Algorithm, Encoding, KeyRing};
use crate::testing::{current, derived_id, SignedRequest};
use crate::{
    ConfigError, Connector, ConnectorKind, CustomerRecord, OrderLine, OrderRecord, ParseError, Person, PrivacyRequest,
    Record, Reply, Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the app's client secret (the HMAC key).
pub const SECRET: &str = "client_secret";

const SIGNATURE_HEADERS: [&str; 2] = ["x-shopify-hmac-sha256", "shopify-hmac-sha256"];
const EVENT_ID_HEADERS: [&str; 4] =
    ["x-shopify-event-id", "shopify-event-id", "x-shopify-webhook-id", "shopify-webhook-id"];
const TOPIC_HEADERS: [&str; 2] = ["x-shopify-topic", "shopify-topic"];
const TRIGGERED_AT_HEADERS: [&str; 2] = ["x-shopify-triggered-at", "shopify-triggered-at"];

/// Shopify needs no settings beyond its secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {}

/// JSON Schema of [`ShopifyConfig`].
pub fn config_schema() -> Value {
    object_schema("Shopify", serde_json::json!({}), &[])
}

/// A Shopify app's webhook endpoint.
#[derive(Debug)]
pub struct Shopify {
    keys: KeyRing,
}

impl Shopify {
    pub fn new(_config: ShopifyConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)? })
    }
}

impl Connector for Shopify {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Shopify
    }

    fn verify(&self, req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let signature =
            req.header_any(&SIGNATURE_HEADERS).ok_or(WebhookError::MissingSignature(SIGNATURE_HEADERS[0]))?;
        verify_text(&self.keys, Algorithm::Sha256, Encoding::Base64, "", signature, &[req.body])?;
        let event_id = req.header_any(&EVENT_ID_HEADERS).and_then(clean).unwrap_or_else(|| body_hash_id(req.body));
        let event_type = req.header_any(&TOPIC_HEADERS).and_then(clean).unwrap_or_else(|| "unknown".into());
        Ok(WebhookOutcome::Accept { event_id, event_type, ack: Reply::ok() })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let topic = match event.header_any(&TOPIC_HEADERS) {
            Some(t) if event.event_type.is_empty() || event.event_type == "unknown" => t.trim().to_string(),
            _ => event.event_type.clone(),
        };
        let requested_at = event.header_any(&TRIGGERED_AT_HEADERS).and_then(rfc3339).or(Some(event.received_at));
        parse_topic(&topic, &event.body, requested_at)
    }
}

/// Topics carrying a full customer object.
const CUSTOMER_TOPICS: [&str; 4] = ["customers/create", "customers/update", "customers/enable", "customers/disable"];

fn parse_topic(topic: &str, body: &[u8], requested_at: Option<DateTime<Utc>>) -> Result<Vec<Record>, ParseError> {
    match topic {
        t if CUSTOMER_TOPICS.contains(&t) => {
            let c: Value = from_json(body)?;
            Ok(vec![Record::Customer(customer(&c)?)])
        }
        // orders/delete carries only the id, and order edits carry a diff: no order to record.
        "orders/delete" | "orders/edited" => Ok(Vec::new()),
        t if t.starts_with("orders/") => {
            let o: Value = from_json(body)?;
            Ok(vec![Record::Order(order(&o)?)])
        }
        "customers/redact" | "customers/data_request" => {
            let p: Value = from_json(body)?;
            let c = p.get("customer").unwrap_or(&Value::Null);
            let mut person = Person { external_id: field(c, "id"), ..Person::default() };
            push_unique(&mut person.emails, field(c, "email"));
            push_unique(&mut person.phones, field(c, "phone"));
            let request = PrivacyRequest { person, requested_at };
            Ok(vec![if topic == "customers/redact" { Record::Erasure(request) } else { Record::DataRequest(request) }])
        }
        "shop/redact" => Ok(vec![Record::ShopErasure { requested_at }]),
        _ => Ok(Vec::new()),
    }
}

/// Person fields of a Shopify customer object (also the `customer` of an order).
fn customer_person(c: &Value) -> Person {
    let default_address = c.get("default_address").filter(|a| a.is_object());
    let mut person = Person {
        external_id: field(c, "id"),
        given_name: field(c, "first_name"),
        family_name: field(c, "last_name"),
        ..Person::default()
    };
    push_unique(&mut person.emails, field(c, "email"));
    push_unique(&mut person.phones, field(c, "phone"));
    if let Some(a) = default_address {
        push_unique(&mut person.phones, field(a, "phone"));
        person.given_name = person.given_name.or_else(|| field(a, "first_name"));
        person.family_name = person.family_name.or_else(|| field(a, "last_name"));
        person.address = shopify_address(a);
        person.country = country_code(field(a, "country_code"));
    }
    person
}

fn shopify_address(a: &Value) -> Option<crate::Address> {
    address(
        field(a, "address1"),
        field(a, "address2"),
        field(a, "city"),
        field(a, "province_code").or_else(|| field(a, "province")),
        field(a, "zip"),
        field(a, "country_code"),
    )
}

fn customer(c: &Value) -> Result<CustomerRecord, ParseError> {
    let person = customer_person(c);
    if person.external_id.is_none() {
        return Err(ParseError::MissingField("id"));
    }
    let mut traits = Map::new();
    if let Some(tags) = c.get("tags").and_then(Value::as_str) {
        let tags: Vec<Value> = tags.split(',').filter_map(clean).map(Value::String).collect();
        traits.insert("tags".into(), Value::Array(tags));
    }
    for key in ["accepts_marketing", "verified_email", "state", "currency", "tax_exempt", "orders_count", "total_spent"]
    {
        if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
            traits.insert(key.into(), v.clone());
        }
    }
    for key in ["email_marketing_consent", "sms_marketing_consent"] {
        if let Some(state) = c.pointer(&format!("/{key}/state")).filter(|v| !v.is_null()) {
            traits.insert(key.into(), state.clone());
        }
    }
    Ok(CustomerRecord { person, updated_at: field(c, "updated_at").as_deref().and_then(rfc3339), traits })
}

fn order(o: &Value) -> Result<OrderRecord, ParseError> {
    let external_id = field(o, "id").ok_or(ParseError::MissingField("id"))?;
    let currency = field(o, "currency");
    let billing = o.get("billing_address").filter(|a| a.is_object());

    let mut person = Person::default();
    push_unique(&mut person.emails, field(o, "email"));
    push_unique(&mut person.emails, field(o, "contact_email"));
    push_unique(&mut person.phones, field(o, "phone"));
    if let Some(b) = billing {
        push_unique(&mut person.phones, field(b, "phone"));
        person.address = shopify_address(b);
        person.country = country_code(field(b, "country_code"));
    }
    if let Some(c) = o.get("customer").filter(|c| c.is_object()) {
        let from_customer = customer_person(c);
        person.external_id = from_customer.external_id.clone();
        crate::payload::merge_person(&mut person, from_customer);
    }
    if let Some(b) = billing {
        person.given_name = person.given_name.or_else(|| field(b, "first_name"));
        person.family_name = person.family_name.or_else(|| field(b, "last_name"));
    }

    let lines = o
        .get("line_items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|l| OrderLine {
                    sku: field(l, "sku"),
                    name: field(l, "name").or_else(|| field(l, "title")).unwrap_or_default(),
                    quantity: l.get("quantity").and_then(Value::as_i64).unwrap_or(0),
                    price: money_decimal(l.get("price"), currency.as_deref()),
                })
                .collect()
        })
        .unwrap_or_default();

    let status = if o.get("cancelled_at").is_some_and(|v| !v.is_null()) {
        Some("cancelled".to_string())
    } else {
        field(o, "financial_status")
    };

    Ok(OrderRecord {
        external_id,
        person,
        status,
        total: money_decimal(o.get("total_price"), currency.as_deref()),
        lines,
        placed_at: field(o, "created_at").as_deref().and_then(rfc3339),
        updated_at: field(o, "updated_at").as_deref().and_then(rfc3339),
    })
}

/// The topic a body most likely belongs to (for [`crate::testing::sign`]).
fn guess_topic(body: &[u8]) -> &'static str {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if v.get("line_items").is_some() || v.get("financial_status").is_some() {
        "orders/create"
    } else if v.get("orders_to_redact").is_some() {
        "customers/redact"
    } else if v.get("data_request").is_some() {
        "customers/data_request"
    } else if v.get("shop_domain").is_some() {
        "shop/redact"
    } else {
        "customers/create"
    }
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], now: DateTime<Utc>) -> SignedRequest {
    let mac = hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[body]);
    let id = derived_id(body, "shopify");
    SignedRequest::post(url, body)
        .with_header("x-shopify-topic", guess_topic(body))
        .with_header("x-shopify-hmac-sha256", encode_base64(&mac))
        .with_header("x-shopify-shop-domain", "junction-test.myshopify.com")
        .with_header("x-shopify-api-version", "2025-01")
        .with_header("x-shopify-webhook-id", format!("{}-webhook", &id))
        .with_header("x-shopify-event-id", id)
        .with_header("x-shopify-triggered-at", now.to_rfc3339())
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
