//! WhatsApp Business Cloud API (Meta) webhooks.
//!
//! Setup: Meta calls `GET ?hub.mode=subscribe&hub.verify_token=<token>&hub.challenge=<n>`;
//! when the token matches the stored `verify_token` the challenge is echoed back.
//!
//! Signature: `X-Hub-Signature-256: sha256=<hex>` = HMAC-SHA256 of the raw body keyed with the
//! app secret. Meta escapes non-ASCII as `\uXXXX` in what it signs, so only the raw bytes
//! verify: never re-serialise.
//!
//! Event id: the message id (`wamid.…`) when the delivery holds exactly one message; a
//! single status update is `wamid.…:<status>` (sent, delivered, read are distinct events);
//! anything else (batches, other fields) is `sha256:<hex of body>`.
//!
//! Parse: each inbound message → [`MessageRecord`] on [`Channel::Whatsapp`], the person being
//! `+<wa_id>` (phone), `wa_id` (external id) and the contact's profile name. Status updates
//! describe our own outbound messages and carry no identity beyond the wa_id already known:
//! they yield no records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{body_hash_id, field, from_json, push_unique, unix_text};
use crate::registry::object_schema;
use crate::signature::{ct_eq, hmac, verify_text, Algorithm, Encoding, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    Channel, ConfigError, Connector, ConnectorKind, Direction, MessageRecord, ParseError, Person, Record, Reply,
    Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the Meta app secret (the HMAC key).
pub const SECRET: &str = "app_secret";
/// The secret holding the verify token chosen when registering the webhook.
pub const VERIFY_TOKEN: &str = "verify_token";
/// Secret names, for the registry.
pub const SECRETS: [&str; 2] = [SECRET, VERIFY_TOKEN];
const HEADER: &str = "x-hub-signature-256";

/// WhatsApp needs no settings beyond its secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {}

/// JSON Schema of [`WhatsappConfig`].
pub fn config_schema() -> Value {
    object_schema("WhatsApp Cloud API", serde_json::json!({}), &[])
}

/// A WhatsApp Cloud API webhook.
#[derive(Debug)]
pub struct Whatsapp {
    keys: KeyRing,
    verify_tokens: KeyRing,
}

impl Whatsapp {
    pub fn new(_config: WhatsappConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)?, verify_tokens: KeyRing::required(secrets, VERIFY_TOKEN)? })
    }

    fn handshake(&self, req: &WebhookRequest<'_>) -> Result<WebhookOutcome, WebhookError> {
        let token = req.query_param("hub.verify_token").ok_or(WebhookError::MissingSignature("hub.verify_token"))?;
        if !self.verify_tokens.any(|t| ct_eq(t, token.as_bytes())) {
            return Err(WebhookError::BadSignature);
        }
        if req.query_param("hub.mode") != Some("subscribe") {
            return Err(WebhookError::Malformed("hub.mode must be subscribe".into()));
        }
        let challenge =
            req.query_param("hub.challenge").ok_or_else(|| WebhookError::Malformed("missing hub.challenge".into()))?;
        Ok(WebhookOutcome::Respond(Reply::text(200, challenge)))
    }
}

/// Every `value` object of the `messages` field.
fn values(payload: &Value) -> impl Iterator<Item = &Value> {
    payload
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("changes").and_then(Value::as_array))
        .flatten()
        .filter(|c| c.get("field").and_then(Value::as_str) == Some("messages"))
        .filter_map(|c| c.get("value"))
}

fn items<'a>(payload: &'a Value, key: &'a str) -> impl Iterator<Item = &'a Value> {
    values(payload).filter_map(move |v| v.get(key).and_then(Value::as_array)).flatten()
}

fn identify(body: &[u8]) -> (String, String) {
    let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let messages: Vec<&Value> = items(&payload, "messages").collect();
    let statuses: Vec<&Value> = items(&payload, "statuses").collect();
    let single_message = match (messages.as_slice(), statuses.is_empty()) {
        ([m], true) => field(m, "id"),
        _ => None,
    };
    let single_status = match (statuses.as_slice(), messages.is_empty()) {
        ([s], true) => field(s, "id").zip(field(s, "status")).map(|(id, st)| format!("{id}:{st}")),
        _ => None,
    };
    let event_type = if !messages.is_empty() {
        "messages".to_string()
    } else if !statuses.is_empty() {
        "statuses".to_string()
    } else {
        payload
            .pointer("/entry/0/changes/0/field")
            .and_then(|f| crate::payload::text(Some(f)))
            .unwrap_or_else(|| "unknown".into())
    };
    (single_message.or(single_status).unwrap_or_else(|| body_hash_id(body)), event_type)
}

impl Connector for Whatsapp {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Whatsapp
    }

    fn verify(&self, req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        if req.method.eq_ignore_ascii_case("GET") {
            return self.handshake(req);
        }
        req.require_method("POST")?;
        let signature = req.header(HEADER).ok_or(WebhookError::MissingSignature(HEADER))?;
        verify_text(&self.keys, Algorithm::Sha256, Encoding::Hex, "sha256=", signature, &[req.body])?;
        let (event_id, event_type) = identify(req.body);
        Ok(WebhookOutcome::Accept { event_id, event_type, ack: Reply::ok() })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let payload: Value = from_json(&event.body)?;
        let mut records = Vec::new();
        for value in values(&payload) {
            let contacts = value.get("contacts").and_then(Value::as_array).cloned().unwrap_or_default();
            let name_of = |wa_id: &str| {
                contacts
                    .iter()
                    .find(|c| field(c, "wa_id").as_deref() == Some(wa_id))
                    .and_then(|c| c.pointer("/profile/name"))
                    .and_then(|n| crate::payload::text(Some(n)))
            };
            for m in value.get("messages").and_then(Value::as_array).into_iter().flatten() {
                let (Some(id), Some(from)) = (field(m, "id"), field(m, "from")) else { continue };
                let message_type = field(m, "type").unwrap_or_else(|| "unknown".into());
                let mut person =
                    Person { external_id: Some(from.clone()), full_name: name_of(&from), ..Person::default() };
                push_unique(&mut person.phones, Some(format!("+{from}")));
                records.push(Record::Message(MessageRecord {
                    channel: Channel::Whatsapp,
                    direction: Direction::Inbound,
                    message_id: id,
                    person,
                    text: message_text(m, &message_type),
                    message_type,
                    sent_at: field(m, "timestamp").as_deref().and_then(unix_text),
                }));
            }
        }
        Ok(records)
    }
}

/// The human-readable text of a message, by type.
fn message_text(m: &Value, message_type: &str) -> Option<String> {
    let at = |p: &str| m.pointer(p).and_then(|v| crate::payload::text(Some(v)));
    match message_type {
        "text" => at("/text/body"),
        "button" => at("/button/text"),
        "interactive" => at("/interactive/button_reply/title").or_else(|| at("/interactive/list_reply/title")),
        "image" | "video" | "document" => at(&format!("/{message_type}/caption")),
        "reaction" => at("/reaction/emoji"),
        _ => None,
    }
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    let mac = hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[body]);
    SignedRequest::post(url, body).with_header(HEADER, format!("sha256={}", hex::encode(mac)))
}

pub(crate) fn handshake(secrets: &Secrets, url: &str, challenge: &str) -> SignedRequest {
    SignedRequest::get(url).with_query(&[
        ("hub.mode", "subscribe"),
        ("hub.challenge", challenge),
        ("hub.verify_token", current(secrets, VERIFY_TOKEN)),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
