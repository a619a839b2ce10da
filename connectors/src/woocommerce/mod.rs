//! WooCommerce webhooks.
//!
//! Signature: `X-WC-Webhook-Signature` = base64 HMAC-SHA256 of the raw body, keyed with the
//! webhook's secret. Topic in `X-WC-Webhook-Topic` (`order.created`, `customer.updated`, …).
//!
//! When a webhook is created (or re-activated) WooCommerce posts an *unsigned* ping,
//! `webhook_id=<n>` form-encoded, and disables the webhook unless it gets a 2xx: that ping is
//! answered `200` directly and nothing is stored.
//!
//! WooCommerce sends no event id and does not retry; the dedupe key is
//! `{topic}:{resource id}:{date_modified_gmt}` (`date_modified` when the GMT field is absent),
//! which is the same for a re-delivery of the same version of the resource. Without an id
//! or a date the body hash is used.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payload::{
    address, body_hash_id, clean, country_code, field, from_json, money_decimal, push_unique, utc_naive,
};
use crate::registry::object_schema;
use crate::signature::{encode_base64, hmac, verify_text, Algorithm, Encoding, KeyRing};
use crate::testing::{current, derived_id, SignedRequest};
use crate::{
    ConfigError, Connector, ConnectorKind, CustomerRecord, OrderLine, OrderRecord, ParseError, Person, Record, Reply,
    Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the webhook's secret.
pub const SECRET: &str = "webhook_secret";
const SIGNATURE_HEADER: &str = "x-wc-webhook-signature";
const TOPIC_HEADER: &str = "x-wc-webhook-topic";

/// WooCommerce needs no settings beyond its secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WoocommerceConfig {}

/// JSON Schema of [`WoocommerceConfig`].
pub fn config_schema() -> Value {
    object_schema("WooCommerce", serde_json::json!({}), &[])
}

/// A WooCommerce store's webhook endpoint.
#[derive(Debug)]
pub struct Woocommerce {
    keys: KeyRing,
}

impl Woocommerce {
    pub fn new(_config: WoocommerceConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)? })
    }
}

/// `webhook_id=<digits>` and nothing else: the creation ping.
fn is_creation_ping(body: &[u8]) -> bool {
    let Ok(fields) = crate::form::parse_urlencoded(body) else { return false };
    matches!(fields.as_slice(), [(k, v)] if k == "webhook_id" && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

impl Connector for Woocommerce {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Woocommerce
    }

    fn verify(&self, req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let Some(signature) = req.header(SIGNATURE_HEADER) else {
            // Answering the ping stores nothing, so an unsigned one cannot inject data.
            if is_creation_ping(req.body) {
                return Ok(WebhookOutcome::Respond(Reply::ok()));
            }
            return Err(WebhookError::MissingSignature(SIGNATURE_HEADER));
        };
        verify_text(&self.keys, Algorithm::Sha256, Encoding::Base64, "", signature, &[req.body])?;
        let topic = req.header(TOPIC_HEADER).and_then(clean).unwrap_or_else(|| "unknown".into());
        let resource: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        let version = field(&resource, "date_modified_gmt").or_else(|| field(&resource, "date_modified"));
        let event_id = match (field(&resource, "id"), version) {
            (Some(id), Some(modified)) => format!("{topic}:{id}:{modified}"),
            _ => body_hash_id(req.body),
        };
        Ok(WebhookOutcome::Accept { event_id, event_type: topic, ack: Reply::ok() })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let topic = if event.event_type.is_empty() || event.event_type == "unknown" {
            event.header(TOPIC_HEADER).unwrap_or_default().trim().to_string()
        } else {
            event.event_type.clone()
        };
        Ok(match topic.as_str() {
            "customer.created" | "customer.updated" | "customer.restored" => {
                vec![Record::Customer(customer(&from_json(&event.body)?)?)]
            }
            "order.created" | "order.updated" | "order.restored" => {
                vec![Record::Order(order(&from_json(&event.body)?)?)]
            }
            _ => Vec::new(),
        })
    }
}

/// A billing or shipping block as an address.
fn wc_address(a: &Value) -> Option<crate::Address> {
    address(
        field(a, "address_1"),
        field(a, "address_2"),
        field(a, "city"),
        field(a, "state"),
        field(a, "postcode"),
        field(a, "country"),
    )
}

/// Identity from the billing and shipping blocks (billing first).
fn contact(v: &Value) -> Person {
    let mut person = Person::default();
    let billing = v.get("billing").filter(|b| b.is_object());
    let shipping = v.get("shipping").filter(|b| b.is_object());
    for block in [billing, shipping].into_iter().flatten() {
        push_unique(&mut person.emails, field(block, "email"));
        push_unique(&mut person.phones, field(block, "phone"));
        person.given_name = person.given_name.take().or_else(|| field(block, "first_name"));
        person.family_name = person.family_name.take().or_else(|| field(block, "last_name"));
        if person.address.is_none() {
            person.address = wc_address(block);
            person.country = country_code(field(block, "country"));
        }
    }
    person
}

/// A WooCommerce user id; 0 is a guest and identifies nobody.
fn user_id(v: Option<&Value>) -> Option<String> {
    crate::payload::text(v).filter(|id| id != "0")
}

fn customer(c: &Value) -> Result<CustomerRecord, ParseError> {
    let external_id = user_id(c.get("id")).ok_or(ParseError::MissingField("id"))?;
    let from_blocks = contact(c);
    let mut person = Person {
        external_id: Some(external_id),
        given_name: field(c, "first_name"),
        family_name: field(c, "last_name"),
        ..Person::default()
    };
    push_unique(&mut person.emails, field(c, "email"));
    crate::payload::merge_person(&mut person, from_blocks);
    let mut traits = Map::new();
    for key in ["username", "role", "is_paying_customer"] {
        if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
            traits.insert(key.into(), v.clone());
        }
    }
    Ok(CustomerRecord { person, updated_at: field(c, "date_modified_gmt").as_deref().and_then(utc_naive), traits })
}

fn order(o: &Value) -> Result<OrderRecord, ParseError> {
    let currency = field(o, "currency");
    let mut person = contact(o);
    person.external_id = user_id(o.get("customer_id"));
    let lines = o
        .get("line_items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|l| OrderLine {
                    sku: field(l, "sku"),
                    name: field(l, "name").unwrap_or_default(),
                    quantity: l.get("quantity").and_then(Value::as_i64).unwrap_or(0),
                    price: money_decimal(l.get("price"), currency.as_deref()),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(OrderRecord {
        external_id: field(o, "id").ok_or(ParseError::MissingField("id"))?,
        person,
        status: field(o, "status"),
        total: money_decimal(o.get("total"), currency.as_deref()),
        lines,
        placed_at: field(o, "date_created_gmt").as_deref().and_then(utc_naive),
        updated_at: field(o, "date_modified_gmt").as_deref().and_then(utc_naive),
    })
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    let mac = hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[body]);
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (resource, event) = if v.get("line_items").is_some() { ("order", "created") } else { ("customer", "created") };
    SignedRequest::post(url, body)
        .with_header("x-wc-webhook-source", "https://store.example/")
        .with_header(TOPIC_HEADER, format!("{resource}.{event}"))
        .with_header("x-wc-webhook-resource", resource)
        .with_header("x-wc-webhook-event", event)
        .with_header(SIGNATURE_HEADER, encode_base64(&mac))
        .with_header("x-wc-webhook-id", "1")
        .with_header("x-wc-webhook-delivery-id", derived_id(body, "woocommerce"))
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
