//! HubSpot webhooks (signature v3) and the contacts pull ([`pull`]).
//!
//! Signature: `X-HubSpot-Signature-v3` = base64 HMAC-SHA256, keyed with the app's client
//! secret, of `method + URI + body + timestamp`, where the timestamp is the
//! `X-HubSpot-Request-Timestamp` header (milliseconds) and the URI is the full URL HubSpot
//! called with some percent-escapes decoded (`:/?@!$'()*,;`), as HubSpot computes it.
//! Requests older than five minutes are refused.
//!
//! A delivery is a JSON array of thin events (`subscriptionType`, `objectId`,
//! `propertyName`, `propertyValue`). Event id: the `eventId` of a single-event delivery,
//! else a hash of the body. Contact creations and property changes of identity properties
//! (`email`, `phone`, `mobilephone`, `firstname`, `lastname`) become customer records keyed
//! by the contact id; `contact.privacyDeletion` is an erasure; other events are ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payload::{body_hash_id, field, from_json, push_unique, unix_secs};
use crate::registry::{check_tolerance, default_tolerance, object_schema, tolerance_schema};
use crate::signature::{encode_base64, hmac, verify_text, Algorithm, Encoding, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    ConfigError, Connector, ConnectorKind, CustomerRecord, ParseError, Person, PrivacyRequest, Record, Reply, Secrets,
    StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the app's client secret.
pub const SECRET: &str = "client_secret";
const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";

/// Settings of a HubSpot app's webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// Accepted age of a request, in seconds (HubSpot: 300).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

impl Default for HubspotConfig {
    fn default() -> Self {
        Self { tolerance_secs: default_tolerance() }
    }
}

/// JSON Schema of [`HubspotConfig`].
pub fn config_schema() -> Value {
    object_schema("HubSpot", serde_json::json!({ "tolerance_secs": tolerance_schema() }), &[])
}

/// A HubSpot app's webhook endpoint.
#[derive(Debug)]
pub struct Hubspot {
    keys: KeyRing,
    tolerance_secs: i64,
}

impl Hubspot {
    pub fn new(config: HubspotConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        check_tolerance("tolerance_secs", config.tolerance_secs)?;
        Ok(Self { keys: KeyRing::required(secrets, SECRET)?, tolerance_secs: config.tolerance_secs })
    }
}

/// The URI as HubSpot signs it: these escapes decoded, others kept.
fn signed_uri(url: &str) -> String {
    const DECODED: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = url.to_string();
    for (from, to) in DECODED {
        out = out.replace(from, to).replace(&from.to_ascii_lowercase(), to);
    }
    out
}

impl Connector for Hubspot {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Hubspot
    }

    fn verify(&self, req: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        let signature = req.header(SIGNATURE_HEADER).ok_or(WebhookError::MissingSignature(SIGNATURE_HEADER))?;
        let timestamp = req.header(TIMESTAMP_HEADER).ok_or(WebhookError::MissingSignature(TIMESTAMP_HEADER))?.trim();
        let method = req.method.to_ascii_uppercase();
        let uri = signed_uri(req.url);
        let parts: [&[u8]; 4] = [method.as_bytes(), uri.as_bytes(), req.body, timestamp.as_bytes()];
        verify_text(&self.keys, Algorithm::Sha256, Encoding::Base64, "", signature, &parts)?;
        let ms: i64 = timestamp.parse().map_err(|_| WebhookError::Malformed("timestamp is not a number".into()))?;
        crate::signature::check_window(ms.div_euclid(1000), now, self.tolerance_secs)?;
        let events: Vec<Value> = serde_json::from_slice(req.body).unwrap_or_default();
        let event_id = match events.as_slice() {
            [one] => field(one, "eventId").unwrap_or_else(|| body_hash_id(req.body)),
            _ => body_hash_id(req.body),
        };
        let event_type = match events.as_slice() {
            [one] => field(one, "subscriptionType").unwrap_or_else(|| "unknown".into()),
            [] => "unknown".into(),
            _ => "batch".into(),
        };
        Ok(WebhookOutcome::Accept { event_id, event_type, ack: Reply::ok() })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let events: Vec<Value> = from_json(&event.body)?;
        let mut out = Vec::new();
        for e in &events {
            let Some(id) = field(e, "objectId") else { continue };
            let at = e.get("occurredAt").and_then(Value::as_i64).and_then(|ms| unix_secs(ms.div_euclid(1000)));
            let person = Person { external_id: Some(id), ..Person::default() };
            match field(e, "subscriptionType").as_deref() {
                Some("contact.creation") => {
                    out.push(Record::Customer(CustomerRecord { person, updated_at: at, traits: Map::new() }));
                }
                Some("contact.propertyChange") => {
                    let mut person = person;
                    let value = field(e, "propertyValue");
                    match field(e, "propertyName").as_deref() {
                        Some("email") => push_unique(&mut person.emails, value),
                        Some("phone" | "mobilephone") => push_unique(&mut person.phones, value),
                        Some("firstname") => person.given_name = value,
                        Some("lastname") => person.family_name = value,
                        _ => continue,
                    }
                    out.push(Record::Customer(CustomerRecord { person, updated_at: at, traits: Map::new() }));
                }
                Some("contact.privacyDeletion") => {
                    out.push(Record::Erasure(PrivacyRequest { person, requested_at: at }));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Contact properties read by the pull.
pub(crate) const CONTACT_PROPERTIES: [&str; 10] =
    ["email", "firstname", "lastname", "phone", "mobilephone", "address", "city", "zip", "country", "lastmodifieddate"];

/// A contact object of the CRM API as a customer record.
pub(crate) fn contact(c: &Value) -> Result<CustomerRecord, ParseError> {
    let id = field(c, "id").ok_or(ParseError::MissingField("id"))?;
    let p = c.get("properties").unwrap_or(&Value::Null);
    let mut person = Person {
        external_id: Some(id),
        given_name: field(p, "firstname"),
        family_name: field(p, "lastname"),
        address: crate::payload::address(field(p, "address"), None, field(p, "city"), None, field(p, "zip"), None),
        ..Person::default()
    };
    push_unique(&mut person.emails, field(p, "email"));
    push_unique(&mut person.phones, field(p, "phone"));
    push_unique(&mut person.phones, field(p, "mobilephone"));
    let mut traits = Map::new();
    if let Some(country) = field(p, "country") {
        traits.insert("country".into(), Value::String(country));
    }
    let updated = field(p, "lastmodifieddate").or_else(|| field(c, "updatedAt"));
    Ok(CustomerRecord { person, updated_at: updated.as_deref().and_then(crate::payload::rfc3339), traits })
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], now: DateTime<Utc>) -> SignedRequest {
    let ts = now.timestamp_millis().to_string();
    let uri = signed_uri(url);
    let mac =
        hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[b"POST", uri.as_bytes(), body, ts.as_bytes()]);
    SignedRequest::post(url, body)
        .with_header("content-type", "application/json")
        .with_header(SIGNATURE_HEADER, encode_base64(&mac))
        .with_header(TIMESTAMP_HEADER, ts)
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::{at, secrets};

    #[test]
    fn v3_signatures_verify_and_stale_or_forged_ones_do_not() {
        let s = secrets(&[("client_secret", "hubsecret")]);
        let hub = Hubspot::new(HubspotConfig::default(), &s).unwrap();
        let body = include_bytes!("fixtures/contact_events.json");
        let now = at(1_714_557_601);
        let url = "https://hub.example.com/webhooks/con_1?x=a%3Ab";
        let signed = sign(&s, url, body, now);
        let outcome = hub.verify(&signed.request(), now).unwrap();
        let WebhookOutcome::Accept { event_id, event_type, .. } = outcome else { panic!() };
        assert_eq!((event_id.as_str(), event_type.as_str()), ("1003415267", "contact.propertyChange"));
        // The signed URI has `%3A` decoded, as HubSpot computes it.
        let ts = now.timestamp_millis().to_string();
        let manual = encode_base64(&hmac(
            Algorithm::Sha256,
            b"hubsecret",
            &[b"POST", b"https://hub.example.com/webhooks/con_1?x=a:b", body, ts.as_bytes()],
        ));
        assert_eq!(signed.header(SIGNATURE_HEADER), Some(manual.as_str()));
        assert_eq!(
            hub.verify(&signed.request(), at(1_714_557_601 + 301)).unwrap_err(),
            WebhookError::StaleTimestamp { tolerance_secs: 300 }
        );
        let forged = sign(&secrets(&[("client_secret", "other")]), url, body, now);
        assert_eq!(hub.verify(&forged.request(), now).unwrap_err(), WebhookError::BadSignature);
        let records = hub.parse(&signed.stored(&event_id, &event_type, now)).unwrap();
        let Record::Customer(c) = &records[0] else { panic!() };
        assert_eq!(c.person.external_id.as_deref(), Some("123"));
        assert_eq!(c.person.emails, vec!["lin.wei@acme-mail.io".to_string()]);
    }
}
