//! Any platform that signs webhooks with an HMAC, described by configuration.
//!
//! The signature is read from `signature_header`, minus `prefix` (e.g. `sha256=`), decoded
//! from `encoding` (hex or base64) and compared in constant time with the `algorithm`
//! (sha256 or sha1) HMAC of `signed_content`: a template over `{body}` (the raw body,
//! required), `{timestamp}` (the raw value of `timestamp_header`) and `{url}` (the public
//! URL called), e.g. `{timestamp}.{body}`. With a `timestamp_header`, the timestamp (Unix
//! seconds; milliseconds are recognised) must lie within `tolerance_secs` of now.
//!
//! Event id: `event_id_header`, else the JSON pointer `event_id_pointer`, else a body hash.
//! Event type: `event_type_header`, else `event_type_pointer`, else `webhook`.
//!
//! Parse: `mapping` holds JSON pointers for `email`, `phone`, `external_id`, `given_name`,
//! `family_name`, `full_name` and `updated_at`; when they find an email, a phone or an
//! external id, the event becomes a [`CustomerRecord`], otherwise nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{at, body_hash_id, clean, from_json, push_unique, rfc3339, unix_secs};
use crate::registry::{check_tolerance, default_tolerance, object_schema, tolerance_schema};
use crate::signature::{
    check_window, hmac, hmac_matches, parse_unix_secs, strip_prefix_ignore_case, Algorithm, Encoding, KeyRing,
};
use crate::testing::{current, derived_id, SignedRequest};
use crate::{
    ConfigError, Connector, ConnectorKind, CustomerRecord, ParseError, Person, Record, Reply, Secrets, StoredEvent,
    WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the shared HMAC key (used as UTF-8 bytes).
pub const SECRET: &str = "secret";

fn default_template() -> String {
    "{body}".into()
}

/// JSON pointers (RFC 6901, e.g. `/data/customer/email`) to the person fields of a payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    /// RFC 3339 text or Unix seconds.
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl FieldMapping {
    fn pointers(&self) -> [(&'static str, &Option<String>); 7] {
        [
            ("mapping.email", &self.email),
            ("mapping.phone", &self.phone),
            ("mapping.external_id", &self.external_id),
            ("mapping.given_name", &self.given_name),
            ("mapping.family_name", &self.family_name),
            ("mapping.full_name", &self.full_name),
            ("mapping.updated_at", &self.updated_at),
        ]
    }
}

/// How a generic HMAC sender signs, and where its payload keeps ids and person fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericHmacConfig {
    /// Header carrying the signature (any case).
    pub signature_header: String,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub encoding: Encoding,
    /// Text before the encoded MAC in the header (`sha256=`), matched ignoring case.
    #[serde(default)]
    pub prefix: String,
    /// What is signed: a template over `{body}`, `{timestamp}` and `{url}`.
    #[serde(default = "default_template")]
    pub signed_content: String,
    /// Header carrying the signed timestamp, when the sender signs one.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Accepted distance between that timestamp and now, in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
    #[serde(default)]
    pub event_id_header: Option<String>,
    /// JSON pointer to the event id in the body.
    #[serde(default)]
    pub event_id_pointer: Option<String>,
    #[serde(default)]
    pub event_type_header: Option<String>,
    /// JSON pointer to the event type in the body.
    #[serde(default)]
    pub event_type_pointer: Option<String>,
    #[serde(default)]
    pub mapping: FieldMapping,
}

impl Default for GenericHmacConfig {
    /// `x-signature: sha256=<hex HMAC-SHA256 of the body>`, the most common convention; used
    /// by [`crate::testing::sign`].
    fn default() -> Self {
        Self {
            signature_header: "x-signature".into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: "sha256=".into(),
            signed_content: default_template(),
            timestamp_header: None,
            tolerance_secs: default_tolerance(),
            event_id_header: None,
            event_id_pointer: None,
            event_type_header: None,
            event_type_pointer: None,
            mapping: FieldMapping::default(),
        }
    }
}

/// JSON Schema of [`GenericHmacConfig`].
pub fn config_schema() -> Value {
    let header = serde_json::json!({ "type": "string", "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" });
    let pointer =
        serde_json::json!({ "type": "string", "pattern": "^(/.*)?$", "description": "JSON pointer (RFC 6901)" });
    object_schema(
        "Generic HMAC webhook",
        serde_json::json!({
            "signature_header": { "allOf": [header], "description": "Header carrying the signature." },
            "algorithm": { "enum": ["sha256", "sha1"], "default": "sha256" },
            "encoding": { "enum": ["hex", "base64"], "default": "hex" },
            "prefix": { "type": "string", "default": "", "description": "Text before the signature, e.g. sha256=" },
            "signed_content": {
                "type": "string",
                "default": "{body}",
                "pattern": "\\{body\\}",
                "description": "Template of the signed bytes over {body}, {timestamp} and {url}.",
            },
            "timestamp_header": header,
            "tolerance_secs": tolerance_schema(),
            "event_id_header": header,
            "event_id_pointer": pointer,
            "event_type_header": header,
            "event_type_pointer": pointer,
            "mapping": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "email": pointer, "phone": pointer, "external_id": pointer, "given_name": pointer,
                    "family_name": pointer, "full_name": pointer, "updated_at": pointer,
                },
            },
        }),
        &["signature_header"],
    )
}

/// One piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Body,
    Timestamp,
    Url,
}

fn parse_template(template: &str) -> Result<Vec<Piece>, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { field: "signed_content".into(), reason: reason.into() };
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or_else(|| invalid("unclosed `{`"))? + open;
        pieces.push(match &rest[open + 1..close] {
            "body" => Piece::Body,
            "timestamp" => Piece::Timestamp,
            "url" => Piece::Url,
            _ => return Err(invalid("only {body}, {timestamp} and {url} may appear")),
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_string()));
    }
    if !pieces.contains(&Piece::Body) {
        // A signature that does not cover the body authenticates nothing.
        return Err(invalid("must contain {body}"));
    }
    Ok(pieces)
}

fn render<'a>(pieces: &'a [Piece], body: &'a [u8], timestamp: &'a str, url: &'a str) -> Vec<&'a [u8]> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(s) => s.as_bytes(),
            Piece::Body => body,
            Piece::Timestamp => timestamp.as_bytes(),
            Piece::Url => url.as_bytes(),
        })
        .collect()
}

fn check_header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ConfigError::Invalid { field: field.into(), reason: "must be an HTTP header name".into() })
    }
}

fn check_pointer(field: &str, pointer: &Option<String>) -> Result<(), ConfigError> {
    match pointer {
        Some(p) if !p.is_empty() && !p.starts_with('/') => {
            Err(ConfigError::Invalid { field: field.into(), reason: "must be a JSON pointer starting with `/`".into() })
        }
        _ => Ok(()),
    }
}

/// A webhook signed with an HMAC as configured.
#[derive(Debug)]
pub struct GenericHmac {
    keys: KeyRing,
    config: GenericHmacConfig,
    pieces: Vec<Piece>,
}

impl GenericHmac {
    pub fn new(mut config: GenericHmacConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        config.signature_header = check_header_name("signature_header", config.signature_header.trim())?;
        for (field, header) in [
            ("timestamp_header", &mut config.timestamp_header),
            ("event_id_header", &mut config.event_id_header),
            ("event_type_header", &mut config.event_type_header),
        ] {
            if let Some(h) = header.as_mut() {
                *h = check_header_name(field, h.trim())?;
            }
        }
        check_tolerance("tolerance_secs", config.tolerance_secs)?;
        let pieces = parse_template(&config.signed_content)?;
        if pieces.contains(&Piece::Timestamp) && config.timestamp_header.is_none() {
            return Err(ConfigError::Invalid {
                field: "timestamp_header".into(),
                reason: "required when signed_content uses {timestamp}".into(),
            });
        }
        check_pointer("event_id_pointer", &config.event_id_pointer)?;
        check_pointer("event_type_pointer", &config.event_type_pointer)?;
        for (field, pointer) in config.mapping.pointers() {
            check_pointer(field, pointer)?;
        }
        Ok(Self { keys: KeyRing::required(secrets, SECRET)?, config, pieces })
    }
}

/// Unix seconds from a timestamp header; values that can only be milliseconds are scaled.
fn timestamp_secs(raw: &str) -> Option<i64> {
    let n = parse_unix_secs(raw)?;
    Some(if n.unsigned_abs() >= 100_000_000_000 { n / 1000 } else { n })
}

impl Connector for GenericHmac {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::GenericHmac
    }

    fn verify(&self, req: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let cfg = &self.config;
        // The configured names are owned strings; errors name them generically.
        let signature = req.header(&cfg.signature_header).ok_or(WebhookError::MissingSignature("signature header"))?;
        let timestamp = match &cfg.timestamp_header {
            Some(h) => Some(req.header(h).ok_or(WebhookError::MissingSignature("timestamp header"))?.trim()),
            None => None,
        };
        let text = strip_prefix_ignore_case(signature.trim(), &cfg.prefix).ok_or(WebhookError::BadSignature)?;
        let mac = cfg.encoding.decode(text).ok_or(WebhookError::BadSignature)?;
        let parts = render(&self.pieces, req.body, timestamp.unwrap_or(""), req.url);
        if !self.keys.any(|key| hmac_matches(cfg.algorithm, key, &parts, &mac)) {
            return Err(WebhookError::BadSignature);
        }
        if let Some(ts) = timestamp {
            let secs = timestamp_secs(ts).ok_or_else(|| WebhookError::Malformed("timestamp is not a number".into()))?;
            check_window(secs, now, cfg.tolerance_secs)?;
        }

        let payload: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        let from_header = |h: &Option<String>| h.as_deref().and_then(|h| req.header(h)).and_then(clean);
        let from_body = |p: &Option<String>| p.as_deref().and_then(|p| at(&payload, p));
        Ok(WebhookOutcome::Accept {
            event_id: from_header(&cfg.event_id_header)
                .or_else(|| from_body(&cfg.event_id_pointer))
                .unwrap_or_else(|| body_hash_id(req.body)),
            event_type: from_header(&cfg.event_type_header)
                .or_else(|| from_body(&cfg.event_type_pointer))
                .unwrap_or_else(|| "webhook".into()),
            ack: Reply::ok(),
        })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let m = &self.config.mapping;
        if m.email.is_none() && m.phone.is_none() && m.external_id.is_none() {
            return Ok(Vec::new());
        }
        let payload: Value = from_json(&event.body)?;
        let get = |p: &Option<String>| p.as_deref().and_then(|p| at(&payload, p));
        let mut person = Person {
            external_id: get(&m.external_id),
            given_name: get(&m.given_name),
            family_name: get(&m.family_name),
            full_name: get(&m.full_name),
            ..Person::default()
        };
        push_unique(&mut person.emails, get(&m.email));
        push_unique(&mut person.phones, get(&m.phone));
        if person.is_empty() {
            return Ok(Vec::new());
        }
        let updated_at = m.updated_at.as_deref().and_then(|p| payload.pointer(p)).and_then(|v| match v {
            Value::Number(n) => n.as_i64().and_then(unix_secs),
            Value::String(s) => rfc3339(s).or_else(|| parse_unix_secs(s).and_then(unix_secs)),
            _ => None,
        });
        Ok(vec![Record::Customer(CustomerRecord { person, updated_at, traits: Default::default() })])
    }
}

pub(crate) fn sign(
    config: &GenericHmacConfig,
    secrets: &Secrets,
    url: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> SignedRequest {
    let ts = now.timestamp().to_string();
    let pieces = parse_template(&config.signed_content).unwrap_or_else(|_| vec![Piece::Body]);
    let mac = hmac(config.algorithm, current(secrets, SECRET).as_bytes(), &render(&pieces, body, &ts, url));
    let mut req = SignedRequest::post(url, body)
        .with_header(&config.signature_header, format!("{}{}", config.prefix, config.encoding.encode(&mac)));
    if let Some(h) = &config.timestamp_header {
        req = req.with_header(h, ts);
    }
    if let Some(h) = &config.event_id_header {
        req = req.with_header(h, derived_id(body, "generic_hmac"));
    }
    req
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
