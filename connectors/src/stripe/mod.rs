//! Stripe webhooks.
//!
//! Signature: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` where each `v1` is the hex
//! HMAC-SHA256 of `"{t}.{raw body}"`, keyed with the endpoint's whole signing secret
//! (`whsec_…`) as UTF-8 bytes. Stripe sends several `v1` entries while an endpoint secret is
//! being rolled; any one valid entry passes. `v0` entries (test-mode legacy) are ignored.
//! The timestamp must lie within `tolerance_secs` of now (default 300 s), checked after the
//! signature so an unsigned request learns nothing about the window.
//!
//! Event id: the event's `id` (`evt_…`), the same across Stripe's retries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payload::{address, body_hash_id, country_code, field, from_json, money_minor, push_unique, unix_secs};
use crate::registry::{check_tolerance, default_tolerance, object_schema, tolerance_schema};
use crate::signature::{check_window, hmac, hmac_matches, Algorithm, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    ConfigError, Connector, ConnectorKind, CustomerRecord, OrderRecord, ParseError, Person, Record, Reply, Secrets,
    StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the endpoint's signing secret, `whsec_…`.
pub const SECRET: &str = "signing_secret";
const HEADER: &str = "stripe-signature";

/// Settings of a Stripe endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// Accepted distance between the signed timestamp and now, in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self { tolerance_secs: default_tolerance() }
    }
}

/// JSON Schema of [`StripeConfig`].
pub fn config_schema() -> Value {
    object_schema("Stripe", serde_json::json!({ "tolerance_secs": tolerance_schema() }), &[])
}

/// A Stripe webhook endpoint.
#[derive(Debug)]
pub struct Stripe {
    keys: KeyRing,
    tolerance_secs: i64,
}

impl Stripe {
    pub fn new(config: StripeConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        check_tolerance("tolerance_secs", config.tolerance_secs)?;
        Ok(Self { keys: KeyRing::required(secrets, SECRET)?, tolerance_secs: config.tolerance_secs })
    }
}

/// The parts of a `Stripe-Signature` header.
struct SignatureHeader<'a> {
    timestamp: &'a str,
    v1: Vec<Vec<u8>>,
}

fn parse_header(value: &str) -> Result<SignatureHeader<'_>, WebhookError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let Some((k, v)) = item.split_once('=') else { continue };
        match k.trim() {
            "t" => timestamp = Some(v.trim()),
            "v1" => v1.extend(crate::signature::decode_hex(v)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| WebhookError::Malformed("stripe-signature has no timestamp".into()))?;
    Ok(SignatureHeader { timestamp, v1 })
}

impl Connector for Stripe {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Stripe
    }

    fn verify(&self, req: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let header = parse_header(req.header(HEADER).ok_or(WebhookError::MissingSignature(HEADER))?)?;
        let parts: [&[u8]; 3] = [header.timestamp.as_bytes(), b".", req.body];
        let valid = header.v1.iter().any(|sig| self.keys.any(|key| hmac_matches(Algorithm::Sha256, key, &parts, sig)));
        if !valid {
            return Err(WebhookError::BadSignature);
        }
        let timestamp = crate::signature::parse_unix_secs(header.timestamp)
            .ok_or_else(|| WebhookError::Malformed("stripe-signature timestamp is not a number".into()))?;
        check_window(timestamp, now, self.tolerance_secs)?;

        let envelope: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        Ok(WebhookOutcome::Accept {
            event_id: field(&envelope, "id").unwrap_or_else(|| body_hash_id(req.body)),
            event_type: field(&envelope, "type").unwrap_or_else(|| "unknown".into()),
            ack: Reply::ok(),
        })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let envelope: Value = from_json(&event.body)?;
        let event_type = field(&envelope, "type").unwrap_or_default();
        let event_time = envelope.get("created").and_then(Value::as_i64).and_then(unix_secs);
        let object = envelope.pointer("/data/object").ok_or(ParseError::MissingField("data.object"))?;
        Ok(match event_type.as_str() {
            "customer.created" | "customer.updated" => vec![Record::Customer(customer(object, event_time)?)],
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                vec![Record::Order(checkout_session(object, event_time)?)]
            }
            "charge.succeeded" | "charge.refunded" => vec![Record::Order(charge(object, event_time)?)],
            _ => Vec::new(),
        })
    }
}

/// A Stripe id field that may be a string or an expanded object.
fn id_ref(v: &Value, key: &str) -> Option<String> {
    field(v, key).or_else(|| v.get(key).and_then(|o| field(o, "id")))
}

/// Name, email, phone and address of a customer or a `customer_details`/`billing_details`.
fn contact(v: &Value) -> Person {
    let addr = v.get("address").filter(|a| a.is_object());
    let mut person = Person { full_name: field(v, "name"), ..Person::default() };
    push_unique(&mut person.emails, field(v, "email"));
    push_unique(&mut person.phones, field(v, "phone"));
    if let Some(a) = addr {
        person.address = address(
            field(a, "line1"),
            field(a, "line2"),
            field(a, "city"),
            field(a, "state"),
            field(a, "postal_code"),
            field(a, "country"),
        );
        person.country = country_code(field(a, "country"));
    }
    person
}

fn customer(c: &Value, event_time: Option<DateTime<Utc>>) -> Result<CustomerRecord, ParseError> {
    let mut person = contact(c);
    person.external_id = Some(field(c, "id").ok_or(ParseError::MissingField("id"))?);
    let mut traits = Map::new();
    if let Some(m) = c.get("metadata").and_then(Value::as_object).filter(|m| !m.is_empty()) {
        traits.insert("metadata".into(), Value::Object(m.clone()));
    }
    for key in ["preferred_locales", "currency", "delinquent", "tax_exempt"] {
        if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
            traits.insert(key.into(), v.clone());
        }
    }
    // Stripe objects carry no last-modified time: the event's creation time orders updates.
    Ok(CustomerRecord { person, updated_at: event_time, traits })
}

fn checkout_session(s: &Value, event_time: Option<DateTime<Utc>>) -> Result<OrderRecord, ParseError> {
    let mut person = s.get("customer_details").filter(|d| d.is_object()).map(contact).unwrap_or_default();
    person.external_id = id_ref(s, "customer");
    push_unique(&mut person.emails, field(s, "customer_email"));
    Ok(OrderRecord {
        external_id: field(s, "id").ok_or(ParseError::MissingField("id"))?,
        person,
        status: field(s, "payment_status"),
        total: money_minor(s.get("amount_total"), field(s, "currency").as_deref()),
        // A session's line items are not part of the event (they need an API call).
        lines: Vec::new(),
        placed_at: s.get("created").and_then(Value::as_i64).and_then(unix_secs),
        updated_at: event_time,
    })
}

fn charge(c: &Value, event_time: Option<DateTime<Utc>>) -> Result<OrderRecord, ParseError> {
    let mut person = c.get("billing_details").filter(|d| d.is_object()).map(contact).unwrap_or_default();
    person.external_id = id_ref(c, "customer");
    push_unique(&mut person.emails, field(c, "receipt_email"));
    let status = if c.get("refunded").and_then(Value::as_bool) == Some(true) {
        Some("refunded".to_string())
    } else {
        field(c, "status")
    };
    Ok(OrderRecord {
        external_id: field(c, "id").ok_or(ParseError::MissingField("id"))?,
        person,
        status,
        total: money_minor(c.get("amount"), field(c, "currency").as_deref()),
        lines: Vec::new(),
        placed_at: c.get("created").and_then(Value::as_i64).and_then(unix_secs),
        updated_at: event_time,
    })
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], now: DateTime<Utc>) -> SignedRequest {
    let t = now.timestamp().to_string();
    let mac = hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[t.as_bytes(), b".", body]);
    SignedRequest::post(url, body)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_header(HEADER, format!("t={t},v1={}", hex::encode(mac)))
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
