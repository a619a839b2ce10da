//! Twilio webhooks (Messaging, Voice, Event Streams).
//!
//! Signature: `X-Twilio-Signature` = base64 HMAC-SHA1, keyed with the account's auth token,
//! of the full URL Twilio called (including its query string) followed, for form posts, by
//! every POST parameter sorted by name as `name + value` (repeated names: values sorted,
//! duplicates once). JSON bodies (Event Streams) are not in the signature: the URL carries
//! `bodySHA256=<hex sha256 of the body>`, which is checked, and the URL alone is signed.
//!
//! As Twilio's own SDKs do, the URL is tried without its port and with the scheme's default
//! port (`:443`/`:80`), because Twilio is inconsistent about which one it signs. When
//! `X-Twilio-Webhooks-Signature-Settings` names `algorithm=HMAC_SHA256`, SHA-256 is used.
//!
//! Event id: `MessageSid` for an inbound message; a status callback for the same message is
//! `MessageSid:status`, so each status is kept once. Voice: `CallSid:CallStatus`. Event
//! Streams: the CloudEvent `id`.
//!
//! Parse: inbound SMS/MMS → [`MessageRecord`] on [`Channel::Sms`] (Twilio WhatsApp senders,
//! `whatsapp:+…`, on [`Channel::Whatsapp`]); Event Streams `inbound-message.received` too.
//! Status callbacks and calls carry no message content and yield no records.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{body_hash_id, clean, country_code, field, push_unique, rfc3339};
use crate::registry::object_schema;
use crate::signature::{ct_eq, decode_base64, encode_base64, hmac, hmac_matches, sha256_hex, Algorithm, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    form, Channel, ConfigError, Connector, ConnectorKind, Direction, MessageRecord, ParseError, Person, Record, Reply,
    Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the account's auth token.
pub const SECRET: &str = "auth_token";
/// Secret names, for the registry.
pub const SECRETS: [&str; 1] = [SECRET];
const HEADER: &str = "x-twilio-signature";
const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";
const BODY_HASH_PARAM: &str = "bodySHA256";

/// Twilio needs no settings beyond its auth token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {}

/// JSON Schema of [`TwilioConfig`].
pub fn config_schema() -> Value {
    object_schema("Twilio", serde_json::json!({}), &[])
}

/// A Twilio webhook (messaging, status callback or Event Streams sink).
#[derive(Debug)]
pub struct Twilio {
    keys: KeyRing,
}

impl Twilio {
    pub fn new(_config: TwilioConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)? })
    }
}

/// The empty TwiML document: "received, nothing to say back".
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

fn twiml_ack() -> Reply {
    Reply { status: 200, content_type: "text/xml", body: EMPTY_TWIML.as_bytes().to_vec() }
}

/// `url` without its port and with the scheme's default port: the two forms Twilio's SDKs try.
fn url_variants(url: &str) -> Vec<String> {
    let Some(scheme_end) = url.find("://") else { return vec![url.to_string()] };
    let scheme = &url[..scheme_end];
    let after = &url[scheme_end + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(authority_end);
    let (host, has_port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') && authority[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            (&authority[..i], true)
        }
        _ => (authority, false),
    };
    let without = format!("{scheme}://{host}{rest}");
    let with = if has_port {
        url.to_string()
    } else {
        let port = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
        format!("{scheme}://{host}:{port}{rest}")
    };
    if without == with {
        vec![without]
    } else {
        vec![without, with]
    }
}

/// The signed string: URL, then each parameter name with its values, sorted.
fn signed_data(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut grouped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        grouped.entry(k.as_str()).or_default().insert(v.as_str());
    }
    let mut data = url.as_bytes().to_vec();
    for (name, values) in grouped {
        for value in values {
            data.extend_from_slice(name.as_bytes());
            data.extend_from_slice(value.as_bytes());
        }
    }
    data
}

fn algorithm(req: &WebhookRequest<'_>) -> Result<Algorithm, WebhookError> {
    let Some(settings) = req.header(SETTINGS_HEADER) else { return Ok(Algorithm::Sha1) };
    let named = settings.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim() == "algorithm").then(|| v.trim())
    });
    match named {
        None | Some("") => Ok(Algorithm::Sha1),
        Some(a) if a.eq_ignore_ascii_case("HMAC_SHA1") => Ok(Algorithm::Sha1),
        Some(a) if a.eq_ignore_ascii_case("HMAC_SHA256") => Ok(Algorithm::Sha256),
        Some(_) => Err(WebhookError::BadSignature),
    }
}

/// Event id and type of a verified delivery.
fn identify(is_json: bool, body: &[u8]) -> (String, String) {
    if is_json {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let first = if let Value::Array(items) = &v { items.first().unwrap_or(&Value::Null) } else { &v };
        let single = !matches!(&v, Value::Array(items) if items.len() > 1);
        let id = field(first, "id").or_else(|| field(first, "sid")).filter(|_| single);
        let ty = field(first, "type").unwrap_or_else(|| "json".into());
        return (id.unwrap_or_else(|| body_hash_id(body)), ty);
    }
    let params = form::parse_urlencoded(body).unwrap_or_default();
    let get = |k: &str| form::get(&params, k).and_then(clean);
    if let Some(sid) = get("MessageSid").or_else(|| get("SmsSid")) {
        let status = get("MessageStatus").or_else(|| get("SmsStatus")).unwrap_or_else(|| "received".into());
        let id = if status == "received" { sid } else { format!("{sid}:{status}") };
        return (id, format!("message.{status}"));
    }
    if let Some(sid) = get("CallSid") {
        let status = get("CallStatus").unwrap_or_else(|| "unknown".into());
        return (format!("{sid}:{status}"), format!("call.{status}"));
    }
    (body_hash_id(body), "unknown".into())
}

impl Connector for Twilio {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Twilio
    }

    fn verify(&self, req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let signature = req.header(HEADER).ok_or(WebhookError::MissingSignature(HEADER))?;
        let signature = decode_base64(signature).ok_or(WebhookError::BadSignature)?;
        let algorithm = algorithm(req)?;
        let body_hash = req.query_param(BODY_HASH_PARAM);
        let params = match body_hash {
            Some(expected) => {
                if !ct_eq(sha256_hex(req.body).as_bytes(), expected.trim().to_ascii_lowercase().as_bytes()) {
                    return Err(WebhookError::BadSignature);
                }
                Vec::new()
            }
            None => form::parse_urlencoded(req.body).unwrap_or_default(),
        };
        let valid = url_variants(req.url).iter().any(|url| {
            let data = signed_data(url, &params);
            self.keys.any(|key| hmac_matches(algorithm, key, &[&data], &signature))
        });
        if !valid {
            return Err(WebhookError::BadSignature);
        }
        let (event_id, event_type) = identify(body_hash.is_some(), req.body);
        let ack = if body_hash.is_some() { Reply::ok() } else { twiml_ack() };
        Ok(WebhookOutcome::Accept { event_id, event_type, ack })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        if event.query_param(BODY_HASH_PARAM).is_some() {
            return event_streams(&event.body);
        }
        let params = form::parse_urlencoded(&event.body)
            .map_err(|e| ParseError::Invalid { format: "form", detail: e.to_string() })?;
        let get = |k: &str| form::get(&params, k).and_then(clean);
        let status = get("MessageStatus").or_else(|| get("SmsStatus"));
        let Some(sid) = get("MessageSid").or_else(|| get("SmsSid")) else { return Ok(Vec::new()) };
        if status.as_deref().is_some_and(|s| s != "received") {
            return Ok(Vec::new());
        }
        let from = get("From").ok_or(ParseError::MissingField("From"))?;
        let (channel, phone) = match from.strip_prefix("whatsapp:") {
            Some(p) => (Channel::Whatsapp, p.to_string()),
            None => (Channel::Sms, from),
        };
        let media: u32 = get("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0);
        let message_type = match (channel, media) {
            (Channel::Whatsapp, _) => "whatsapp",
            (_, 0) => "sms",
            _ => "mms",
        };
        let mut person =
            Person { full_name: get("ProfileName"), country: country_code(get("FromCountry")), ..Person::default() };
        push_unique(&mut person.phones, Some(phone));
        Ok(vec![Record::Message(MessageRecord {
            channel,
            direction: Direction::Inbound,
            message_id: sid,
            person,
            text: get("Body"),
            message_type: message_type.into(),
            // Twilio's message webhooks carry no timestamp; they arrive within seconds.
            sent_at: Some(event.received_at),
        })])
    }
}

/// Event Streams deliveries: a JSON array of CloudEvents.
fn event_streams(body: &[u8]) -> Result<Vec<Record>, ParseError> {
    let v: Value = crate::payload::from_json(body)?;
    let events = match v {
        Value::Array(items) => items,
        other => vec![other],
    };
    Ok(events
        .iter()
        .filter(|e| field(e, "type").as_deref() == Some("com.twilio.messaging.inbound-message.received"))
        .filter_map(|e| {
            let data = e.get("data")?;
            let mut person = Person::default();
            push_unique(&mut person.phones, field(data, "from"));
            Some(Record::Message(MessageRecord {
                channel: Channel::Sms,
                direction: Direction::Inbound,
                message_id: field(data, "messageSid")?,
                person,
                text: field(data, "body"),
                message_type: "sms".into(),
                sent_at: field(data, "timestamp").or_else(|| field(e, "time")).as_deref().and_then(rfc3339),
            }))
        })
        .collect())
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    let key = current(secrets, SECRET).as_bytes();
    let is_json = serde_json::from_slice::<Value>(body).is_ok_and(|v| v.is_array() || v.is_object());
    if is_json {
        let req = SignedRequest::post(url, body).with_query(&[(BODY_HASH_PARAM, &sha256_hex(body))]);
        let mac = hmac(Algorithm::Sha1, key, &[req.url.as_bytes()]);
        return req.with_header(HEADER, encode_base64(&mac));
    }
    let params = form::parse_urlencoded(body).unwrap_or_default();
    let mac = hmac(Algorithm::Sha1, key, &[&signed_data(url, &params)]);
    SignedRequest::post(url, body)
        .with_header("content-type", "application/x-www-form-urlencoded")
        .with_header("i-twilio-idempotency-token", crate::testing::derived_id(body, "twilio"))
        .with_header(HEADER, encode_base64(&mac))
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
