//! Slack Events API webhooks.
//!
//! Signature: `X-Slack-Signature: v0=<hex>` = HMAC-SHA256 of `"v0:{X-Slack-Request-Timestamp}:{raw
//! body}"` keyed with the app's signing secret; the timestamp must lie within
//! `tolerance_secs` (default 300 s). The `url_verification` handshake is signed like any
//! event: it is verified, then answered with its `challenge`.
//!
//! Event id: `event_id` (the same across Slack's retries, which add `X-Slack-Retry-Num`).
//! Event type: the inner event's `type`, with `.{channel_type}` for messages
//! (`message.im`, the subscription name).
//!
//! Parse: `team_join`/`user_change` → [`CustomerRecord`] (user id, profile email, phone, real
//! name; bots skipped); a direct message from a person (`message.im` without subtype) →
//! [`MessageRecord`] on [`Channel::Slack`] with id `{channel}:{ts}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payload::{body_hash_id, field, from_json, push_unique, unix_secs, unix_text};
use crate::registry::{check_tolerance, default_tolerance, object_schema, tolerance_schema};
use crate::signature::{check_window, hmac, parse_unix_secs, verify_text, Algorithm, Encoding, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    form, Channel, ConfigError, Connector, ConnectorKind, CustomerRecord, Direction, MessageRecord, ParseError, Person,
    Record, Reply, Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the app's signing secret.
pub const SECRET: &str = "signing_secret";
const SIGNATURE_HEADER: &str = "x-slack-signature";
const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// Settings of a Slack app's event subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Accepted distance between the request timestamp and now, in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self { tolerance_secs: default_tolerance() }
    }
}

/// JSON Schema of [`SlackConfig`].
pub fn config_schema() -> Value {
    object_schema("Slack", serde_json::json!({ "tolerance_secs": tolerance_schema() }), &[])
}

/// A Slack app's Events API endpoint.
#[derive(Debug)]
pub struct Slack {
    keys: KeyRing,
    tolerance_secs: i64,
}

impl Slack {
    pub fn new(config: SlackConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        check_tolerance("tolerance_secs", config.tolerance_secs)?;
        Ok(Self { keys: KeyRing::required(secrets, SECRET)?, tolerance_secs: config.tolerance_secs })
    }
}

/// The event type of a payload: inner event type for callbacks, `.channel_type` for messages.
fn event_type(payload: &Value) -> String {
    match field(payload, "type").as_deref() {
        Some("event_callback") => {
            let inner = payload.get("event").unwrap_or(&Value::Null);
            let ty = field(inner, "type").unwrap_or_else(|| "unknown".into());
            match (ty.as_str(), field(inner, "channel_type")) {
                ("message", Some(channel_type)) => format!("message.{channel_type}"),
                _ => ty,
            }
        }
        Some(other) => other.to_string(),
        None => "unknown".into(),
    }
}

impl Connector for Slack {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Slack
    }

    fn verify(&self, req: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let signature = req.header(SIGNATURE_HEADER).ok_or(WebhookError::MissingSignature(SIGNATURE_HEADER))?;
        let timestamp = req.header(TIMESTAMP_HEADER).ok_or(WebhookError::MissingSignature(TIMESTAMP_HEADER))?.trim();
        let parts: [&[u8]; 4] = [b"v0:", timestamp.as_bytes(), b":", req.body];
        verify_text(&self.keys, Algorithm::Sha256, Encoding::Hex, "v0=", signature, &parts)?;
        let ts =
            parse_unix_secs(timestamp).ok_or_else(|| WebhookError::Malformed("timestamp is not a number".into()))?;
        check_window(ts, now, self.tolerance_secs)?;

        let payload: Value = match serde_json::from_slice(req.body) {
            Ok(v) => v,
            // Interactivity and slash commands post forms; they have no event id.
            Err(_) => {
                let fields = form::parse_urlencoded(req.body).unwrap_or_default();
                let ty = match (form::get(&fields, "payload"), form::get(&fields, "command")) {
                    (Some(p), _) => serde_json::from_str::<Value>(p).ok().and_then(|v| field(&v, "type")),
                    (None, Some(_)) => Some("slash_command".into()),
                    _ => None,
                };
                let event_type = ty.unwrap_or_else(|| "unknown".into());
                return Ok(WebhookOutcome::Accept { event_id: body_hash_id(req.body), event_type, ack: Reply::ok() });
            }
        };
        if field(&payload, "type").as_deref() == Some("url_verification") {
            let challenge =
                field(&payload, "challenge").ok_or_else(|| WebhookError::Malformed("missing challenge".into()))?;
            return Ok(WebhookOutcome::Respond(Reply::text(200, &challenge)));
        }
        Ok(WebhookOutcome::Accept {
            event_id: field(&payload, "event_id").unwrap_or_else(|| body_hash_id(req.body)),
            event_type: event_type(&payload),
            ack: Reply::ok(),
        })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        if !event.body.trim_ascii_start().starts_with(b"{") {
            return Ok(Vec::new());
        }
        let payload: Value = from_json(&event.body)?;
        let inner = payload.get("event").unwrap_or(&Value::Null);
        Ok(match event_type(&payload).as_str() {
            "team_join" | "user_change" => {
                user(inner.get("user").unwrap_or(&Value::Null)).map(Record::Customer).into_iter().collect()
            }
            "message.im" => direct_message(inner).map(Record::Message).into_iter().collect(),
            _ => Vec::new(),
        })
    }
}

fn user(u: &Value) -> Option<CustomerRecord> {
    let id = field(u, "id")?;
    if u.get("is_bot").and_then(Value::as_bool) == Some(true) || id == "USLACKBOT" {
        return None;
    }
    let profile = u.get("profile").unwrap_or(&Value::Null);
    let mut person = Person {
        external_id: Some(id),
        given_name: field(profile, "first_name"),
        family_name: field(profile, "last_name"),
        full_name: field(profile, "real_name").or_else(|| field(u, "real_name")),
        ..Person::default()
    };
    push_unique(&mut person.emails, field(profile, "email"));
    push_unique(&mut person.phones, field(profile, "phone"));
    let mut traits = Map::new();
    for (key, value) in [
        ("team_id", u.get("team_id")),
        ("tz", u.get("tz")),
        ("deleted", u.get("deleted")),
        ("is_admin", u.get("is_admin")),
        ("title", profile.get("title")),
        ("display_name", profile.get("display_name")),
    ] {
        if let Some(v) = value.filter(|v| !v.is_null() && v.as_str() != Some("")) {
            traits.insert(key.into(), v.clone());
        }
    }
    Some(CustomerRecord { person, updated_at: u.get("updated").and_then(Value::as_i64).and_then(unix_secs), traits })
}

fn direct_message(m: &Value) -> Option<MessageRecord> {
    // Edits, joins and bot posts carry a subtype or a bot id: not a person writing to us.
    if m.get("subtype").is_some() || m.get("bot_id").is_some() {
        return None;
    }
    let user = field(m, "user")?;
    let ts = field(m, "ts")?;
    Some(MessageRecord {
        channel: Channel::Slack,
        direction: Direction::Inbound,
        message_id: format!("{}:{ts}", field(m, "channel").unwrap_or_default()),
        person: Person { external_id: Some(user), ..Person::default() },
        text: field(m, "text"),
        message_type: "message".into(),
        sent_at: unix_text(&ts),
    })
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], now: DateTime<Utc>) -> SignedRequest {
    let ts = now.timestamp().to_string();
    let mac = hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
    SignedRequest::post(url, body)
        .with_header(TIMESTAMP_HEADER, ts)
        .with_header(SIGNATURE_HEADER, format!("v0={}", hex::encode(mac)))
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
