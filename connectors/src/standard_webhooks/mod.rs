//! Standard Webhooks (<https://www.standardwebhooks.com>) and Svix senders.
//!
//! Headers `webhook-id`, `webhook-timestamp`, `webhook-signature` (Svix: `svix-*`). The
//! signature header holds space-separated `v1,<base64>` entries, each an HMAC-SHA256 of
//! `"{id}.{timestamp}.{raw body}"`; any valid entry passes (senders list several while
//! rotating), other versions (`v1a` asymmetric) are ignored. The key is the base64 decoding
//! of the secret after its `whsec_` prefix. The timestamp must lie within `tolerance_secs`
//! (default 300 s) of now.
//!
//! Event id: `webhook-id`, which the sender keeps across retries.
//!
//! Parse: payloads are `{type, timestamp, data}`. An obvious person becomes a
//! [`CustomerRecord`]: `data.customer`, `data.user` or `data.contact` when present, else
//! `data` itself, with `email`/`email_address`, `phone`/`phone_number`, names and (for a
//! person object or a `customer.*`/`user.*`/`contact.*` event) `id` as external id.
//! Anything without an email, phone or person id yields nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{field, from_json, push_unique, rfc3339};
use crate::registry::{check_tolerance, default_tolerance, object_schema, tolerance_schema};
use crate::signature::{
    check_window, decode_base64, encode_base64, hmac, hmac_matches, parse_unix_secs, Algorithm, KeyRing,
};
use crate::testing::{derived_id, SignedRequest};
use crate::{
    ConfigError, Connector, ConnectorKind, CustomerRecord, ParseError, Person, Record, Reply, Secrets, StoredEvent,
    WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the endpoint secret, `whsec_<base64>`.
pub const SECRET: &str = "secret";
const PREFIX: &str = "whsec_";

/// Settings of a Standard Webhooks endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardWebhooksConfig {
    /// Accepted distance between `webhook-timestamp` and now, in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

impl Default for StandardWebhooksConfig {
    fn default() -> Self {
        Self { tolerance_secs: default_tolerance() }
    }
}

/// JSON Schema of [`StandardWebhooksConfig`].
pub fn config_schema() -> Value {
    object_schema("Standard Webhooks", serde_json::json!({ "tolerance_secs": tolerance_schema() }), &[])
}

/// The HMAC key of a `whsec_…` secret (the prefix is optional, as in the reference SDKs).
pub fn key_of(secret: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = secret.trim().strip_prefix(PREFIX).unwrap_or(secret.trim());
    match crate::signature::decode_base64_key(encoded) {
        Some(key) if !key.is_empty() => Ok(key),
        _ => Err("must be whsec_ followed by base64"),
    }
}

/// A Standard Webhooks / Svix endpoint.
#[derive(Debug)]
pub struct StandardWebhooks {
    keys: KeyRing,
    tolerance_secs: i64,
}

impl StandardWebhooks {
    pub fn new(config: StandardWebhooksConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        check_tolerance("tolerance_secs", config.tolerance_secs)?;
        Ok(Self { keys: KeyRing::required_with(secrets, SECRET, key_of)?, tolerance_secs: config.tolerance_secs })
    }
}

/// The three headers, from the `webhook-*` family or else the `svix-*` one.
fn headers<'a>(req: &'a WebhookRequest<'_>) -> Result<(&'a str, &'a str, &'a str), WebhookError> {
    let family = if req.header("webhook-signature").is_some() || req.header("svix-signature").is_none() {
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    } else {
        ["svix-id", "svix-timestamp", "svix-signature"]
    };
    let get = |name: &'static str| req.header(name).ok_or(WebhookError::MissingSignature(name));
    Ok((get(family[0])?, get(family[1])?, get(family[2])?))
}

impl Connector for StandardWebhooks {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::StandardWebhooks
    }

    fn verify(&self, req: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let (id, timestamp, signatures) = headers(req)?;
        let (id, timestamp) = (id.trim(), timestamp.trim());
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", req.body];
        let valid = signatures
            .split_whitespace()
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, sig)| decode_base64(sig))
            .any(|sig| self.keys.any(|key| hmac_matches(Algorithm::Sha256, key, &parts, &sig)));
        if !valid {
            return Err(WebhookError::BadSignature);
        }
        let ts =
            parse_unix_secs(timestamp).ok_or_else(|| WebhookError::Malformed("timestamp is not a number".into()))?;
        check_window(ts, now, self.tolerance_secs)?;
        let payload: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        Ok(WebhookOutcome::Accept {
            event_id: id.to_string(),
            event_type: field(&payload, "type").unwrap_or_else(|| "unknown".into()),
            ack: Reply::ok(),
        })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let payload: Value = from_json(&event.body)?;
        Ok(person_record(&payload).map(Record::Customer).into_iter().collect())
    }
}

const PERSON_TYPES: [&str; 6] = ["customer", "user", "contact", "person", "subscriber", "member"];

fn person_record(payload: &Value) -> Option<CustomerRecord> {
    let data = payload.get("data")?;
    let event_type = field(payload, "type").unwrap_or_default();
    let nested = ["customer", "user", "contact"].iter().find_map(|k| data.get(*k).filter(|v| v.is_object()));
    let (candidate, is_person_object) = match nested {
        Some(n) => (n, true),
        None => {
            let prefix = event_type.split(['.', '_', ':']).next().unwrap_or_default().to_ascii_lowercase();
            (data, PERSON_TYPES.contains(&prefix.as_str()))
        }
    };
    let mut person = Person {
        external_id: field(candidate, "id").filter(|_| is_person_object),
        given_name: field(candidate, "first_name").or_else(|| field(candidate, "given_name")),
        family_name: field(candidate, "last_name").or_else(|| field(candidate, "family_name")),
        full_name: field(candidate, "name").or_else(|| field(candidate, "full_name")),
        ..Person::default()
    };
    push_unique(&mut person.emails, field(candidate, "email").or_else(|| field(candidate, "email_address")));
    push_unique(&mut person.phones, field(candidate, "phone").or_else(|| field(candidate, "phone_number")));
    if person.is_empty() {
        return None;
    }
    let updated_at = field(candidate, "updated_at").or_else(|| field(payload, "timestamp"));
    Some(CustomerRecord { person, updated_at: updated_at.as_deref().and_then(rfc3339), traits: Default::default() })
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], now: DateTime<Utc>) -> SignedRequest {
    let key = secrets.values(SECRET).first().and_then(|s| key_of(s).ok()).unwrap_or_default();
    let id = format!("msg_{}", derived_id(body, "standard_webhooks"));
    let ts = now.timestamp().to_string();
    let mac = hmac(Algorithm::Sha256, &key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    SignedRequest::post(url, body)
        .with_header("webhook-id", id)
        .with_header("webhook-timestamp", ts)
        .with_header("webhook-signature", format!("v1,{}", encode_base64(&mac)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
