//! Square webhooks.
//!
//! Signature: `x-square-hmacsha256-signature` = base64 HMAC-SHA256 of the notification URL
//! followed by the raw body, keyed with the subscription's signature key. The URL is
//! `req.url` exactly as the hub reconstructs it from its public base URL: it must be the
//! URL registered with Square, byte for byte. (The legacy SHA-1 `x-square-signature` is
//! not accepted.)
//!
//! Event id: the envelope's `event_id`, the same across Square's retries.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payload::{address, body_hash_id, country_code, field, from_json, money_minor, push_unique, rfc3339};
use crate::registry::object_schema;
use crate::signature::{encode_base64, hmac, verify_text, Algorithm, Encoding, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    ConfigError, Connector, ConnectorKind, CustomerRecord, OrderRecord, ParseError, Person, Record, Reply, Secrets,
    StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the subscription's signature key.
pub const SECRET: &str = "signature_key";
const HEADER: &str = "x-square-hmacsha256-signature";

/// Square needs no settings beyond its secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquareConfig {}

/// JSON Schema of [`SquareConfig`].
pub fn config_schema() -> Value {
    object_schema("Square", serde_json::json!({}), &[])
}

/// A Square webhook subscription.
#[derive(Debug)]
pub struct Square {
    keys: KeyRing,
}

impl Square {
    pub fn new(_config: SquareConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)? })
    }
}

impl Connector for Square {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Square
    }

    fn verify(&self, req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let signature = req.header(HEADER).ok_or(WebhookError::MissingSignature(HEADER))?;
        verify_text(&self.keys, Algorithm::Sha256, Encoding::Base64, "", signature, &[req.url.as_bytes(), req.body])?;
        let envelope: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        Ok(WebhookOutcome::Accept {
            event_id: field(&envelope, "event_id").unwrap_or_else(|| body_hash_id(req.body)),
            event_type: field(&envelope, "type").unwrap_or_else(|| "unknown".into()),
            ack: Reply::ok(),
        })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let envelope: Value = from_json(&event.body)?;
        let event_type = field(&envelope, "type").unwrap_or_default();
        let object = envelope.pointer("/data/object").unwrap_or(&Value::Null);
        Ok(match event_type.as_str() {
            "customer.created" | "customer.updated" => {
                let c = object.get("customer").ok_or(ParseError::MissingField("data.object.customer"))?;
                vec![Record::Customer(customer(c)?)]
            }
            t if t.starts_with("payment.") => {
                let p = object.get("payment").ok_or(ParseError::MissingField("data.object.payment"))?;
                payment(p)?.map(Record::Order).into_iter().collect()
            }
            // order.* events carry a thin notice (id, state, version) unless a full order
            // object is present; without a buyer there is nobody to attach it to.
            t if t.starts_with("order.") => match object.get("order") {
                Some(o) => full_order(o)?.map(Record::Order).into_iter().collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        })
    }
}

fn square_address(a: &Value) -> Option<crate::Address> {
    address(
        field(a, "address_line_1"),
        field(a, "address_line_2"),
        field(a, "locality"),
        field(a, "administrative_district_level_1"),
        field(a, "postal_code"),
        field(a, "country"),
    )
}

fn customer(c: &Value) -> Result<CustomerRecord, ParseError> {
    let addr = c.get("address").filter(|a| a.is_object());
    let mut person = Person {
        external_id: Some(field(c, "id").ok_or(ParseError::MissingField("id"))?),
        given_name: field(c, "given_name"),
        family_name: field(c, "family_name"),
        // Square writes a birthday without a year as 0000-MM-DD: that is not a birth date.
        birth_date: field(c, "birthday").and_then(|b| NaiveDate::parse_from_str(&b, "%Y-%m-%d").ok()),
        address: addr.and_then(square_address),
        country: addr.and_then(|a| country_code(field(a, "country"))),
        ..Person::default()
    };
    push_unique(&mut person.emails, field(c, "email_address"));
    push_unique(&mut person.phones, field(c, "phone_number"));
    let mut traits = Map::new();
    for key in ["reference_id", "company_name", "creation_source", "nickname"] {
        if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
            traits.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = c.pointer("/preferences/email_unsubscribed") {
        traits.insert("email_unsubscribed".into(), v.clone());
    }
    Ok(CustomerRecord { person, updated_at: field(c, "updated_at").as_deref().and_then(rfc3339), traits })
}

fn money(v: Option<&Value>) -> Option<crate::Money> {
    let v = v?;
    money_minor(v.get("amount"), field(v, "currency").as_deref())
}

/// A payment as an order, when it names its buyer.
fn payment(p: &Value) -> Result<Option<OrderRecord>, ParseError> {
    let billing = p.get("billing_address").filter(|a| a.is_object());
    let mut person = Person {
        external_id: field(p, "customer_id"),
        given_name: billing.and_then(|b| field(b, "first_name")),
        family_name: billing.and_then(|b| field(b, "last_name")),
        address: billing.and_then(square_address),
        country: billing.and_then(|b| country_code(field(b, "country"))),
        ..Person::default()
    };
    push_unique(&mut person.emails, field(p, "buyer_email_address"));
    if person.is_empty() {
        return Ok(None);
    }
    Ok(Some(OrderRecord {
        external_id: field(p, "id").ok_or(ParseError::MissingField("id"))?,
        person,
        status: field(p, "status"),
        total: money(p.get("total_money")).or_else(|| money(p.get("amount_money"))),
        lines: Vec::new(),
        placed_at: field(p, "created_at").as_deref().and_then(rfc3339),
        updated_at: field(p, "updated_at").as_deref().and_then(rfc3339),
    }))
}

/// A full Square `Order` object, when it names its customer.
fn full_order(o: &Value) -> Result<Option<OrderRecord>, ParseError> {
    let person = Person { external_id: field(o, "customer_id"), ..Person::default() };
    if person.is_empty() {
        return Ok(None);
    }
    let lines = o
        .get("line_items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|l| crate::OrderLine {
                    sku: field(l, "catalog_object_id"),
                    name: field(l, "name").unwrap_or_default(),
                    // Square writes quantities as decimal strings ("2", "1.5"); whole units only.
                    quantity: field(l, "quantity").and_then(|q| q.parse().ok()).unwrap_or(0),
                    price: money(l.get("base_price_money")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(OrderRecord {
        external_id: field(o, "id").ok_or(ParseError::MissingField("id"))?,
        person,
        status: field(o, "state"),
        total: money(o.get("total_money")),
        lines,
        placed_at: field(o, "created_at").as_deref().and_then(rfc3339),
        updated_at: field(o, "updated_at").as_deref().and_then(rfc3339),
    }))
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    let mac = hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[url.as_bytes(), body]);
    SignedRequest::post(url, body).with_header(HEADER, encode_base64(&mac))
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
