//! WeChat Official Account (公众号) message push.
//!
//! WeChat authenticates through the query string. Every request carries `signature`,
//! `timestamp`, `nonce`: `signature` = hex SHA-1 (not an HMAC) of the sorted concatenation
//! of [token, timestamp, nonce]. WeChat does not bound the timestamp; this connector refuses
//! one further than `tolerance_secs` (default 300 s) from now.
//!
//! - `GET` with `echostr`: the server-URL check. Answered with `echostr` once verified.
//! - `POST` plaintext mode: the body XML is *not* covered by `signature` (WeChat's design);
//!   configure an EncodingAESKey for authenticated bodies.
//! - `POST` safe/compatible mode (`encrypt_type=aes`): `msg_signature` = SHA-1 of sorted
//!   [token, timestamp, nonce, Encrypt]; the `Encrypt` element is AES-256-CBC (see
//!   the `crypto` module) and must decrypt to a message for the configured `app_id`. Once an
//!   EncodingAESKey is configured, plaintext posts are refused.
//!
//! Event id: `MsgId`, else `FromUserName:CreateTime` (events). Event type: `MsgType`, or
//! `event.<event>` for events. Acknowledged with `success`, which WeChat accepts in every
//! mode and which stops its three retries.
//!
//! Parse: every message or event → [`MessageRecord`] on [`Channel::Wechat`], the person's
//! external id being the OpenID (`FromUserName`, per official account).

pub(crate) mod crypto;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{body_hash_id, clean, unix_secs};
use crate::registry::{check_tolerance, default_tolerance, object_schema, tolerance_schema};
use crate::signature::{check_window, ct_eq, parse_unix_secs, sha1_hex, sha256_hex, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    Channel, ConfigError, Connector, ConnectorKind, Direction, MessageRecord, ParseError, Person, Record, Reply,
    Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the Token set in the official account's server configuration.
pub const SECRET: &str = "token";
/// The optional secret holding the 43-character EncodingAESKey (safe mode).
pub const AES_KEY: &str = "encoding_aes_key";
/// Secret names, for the registry (`encoding_aes_key` is optional).
pub const SECRETS: [&str; 2] = [SECRET, AES_KEY];

/// Settings of an official account's message push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    /// The official account's AppID (`wx…`); required with an EncodingAESKey, whose
    /// messages name the AppID they were sent to.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Accepted distance between `timestamp` and now, in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

impl Default for WechatConfig {
    fn default() -> Self {
        Self { app_id: None, tolerance_secs: default_tolerance() }
    }
}

/// JSON Schema of [`WechatConfig`].
pub fn config_schema() -> Value {
    object_schema(
        "WeChat Official Account",
        serde_json::json!({
            "app_id": {
                "type": "string",
                "pattern": "^wx[0-9a-zA-Z]+$",
                "description": "The official account's AppID; required when the encoding_aes_key secret is set (safe mode).",
            },
            "tolerance_secs": tolerance_schema(),
        }),
        &[],
    )
}

/// An official account's server URL.
#[derive(Debug)]
pub struct Wechat {
    tokens: KeyRing,
    aes_keys: KeyRing,
    app_id: String,
    tolerance_secs: i64,
}

impl Wechat {
    pub fn new(config: WechatConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        check_tolerance("tolerance_secs", config.tolerance_secs)?;
        let tokens = KeyRing::required(secrets, SECRET)?;
        let aes_keys = KeyRing::optional_with(secrets, AES_KEY, crypto::aes_key)?;
        let app_id = config.app_id.as_deref().and_then(clean).unwrap_or_default();
        if !aes_keys.is_empty() && app_id.is_empty() {
            return Err(ConfigError::Invalid {
                field: "app_id".into(),
                reason: "required when the encoding_aes_key secret is set".into(),
            });
        }
        Ok(Self { tokens, aes_keys, app_id, tolerance_secs: config.tolerance_secs })
    }

    /// True when some token gives `expected` = SHA-1 of the sorted parts (token included).
    fn signed_by_token(&self, expected: &str, parts: &[&str]) -> bool {
        let expected = expected.trim().to_ascii_lowercase();
        self.tokens.any(|token| {
            let mut all: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
            all.push(token);
            all.sort();
            ct_eq(sha1_hex(&all).as_bytes(), expected.as_bytes())
        })
    }

    /// Decrypt with whichever configured key opens the message.
    fn open(&self, encrypted: &str) -> Result<String, crypto::OpenError> {
        let mut error = crypto::OpenError::Undecryptable;
        for key in self.aes_keys.iter() {
            match crypto::open(key.expose(), encrypted, &self.app_id) {
                Ok(xml) => return Ok(xml),
                Err(e @ crypto::OpenError::WrongAppId) => error = e,
                Err(_) => {}
            }
        }
        Err(error)
    }

    /// The message XML of a body: decrypted in safe mode, as is in plaintext mode.
    fn message_fields(&self, body: &[u8]) -> Result<BTreeMap<String, String>, WebhookError> {
        let outer = parse_xml(body).map_err(|_| WebhookError::Malformed("body is not WeChat XML".into()))?;
        let Some(encrypted) = outer.get("Encrypt") else { return Ok(outer) };
        let xml = self.open(encrypted).map_err(|e| match e {
            crypto::OpenError::WrongAppId => WebhookError::BadSignature,
            crypto::OpenError::Undecryptable => {
                WebhookError::Malformed("message does not decrypt with the configured encoding_aes_key".into())
            }
        })?;
        parse_xml(xml.as_bytes()).map_err(|_| WebhookError::Malformed("decrypted message is not XML".into()))
    }
}

/// The children of the root element as name → text (CDATA included). WeChat messages are
/// flat; nested elements (e.g. `ScanCodeInfo`) are skipped.
pub(crate) fn parse_xml(xml: &[u8]) -> Result<BTreeMap<String, String>, quick_xml::Error> {
    let text = std::str::from_utf8(xml).map_err(|e| quick_xml::Error::Encoding(e.into()))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut fields = BTreeMap::new();
    let mut depth = 0usize;
    let mut current: Option<(String, String)> = None;
    loop {
        match reader.read_event()? {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 {
                    current = Some((String::from_utf8_lossy(e.name().as_ref()).into_owned(), String::new()));
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, value)) = current.take() {
                        fields.insert(name, value);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Empty(e) if depth == 1 => {
                fields.insert(String::from_utf8_lossy(e.name().as_ref()).into_owned(), String::new());
            }
            Event::Text(t) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&t.unescape()?);
                }
            }
            Event::CData(c) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::Eof => return Ok(fields),
            _ => {}
        }
    }
}

fn event_type(fields: &BTreeMap<String, String>) -> String {
    let msg_type = fields.get("MsgType").and_then(|t| clean(t)).unwrap_or_else(|| "unknown".into());
    match fields.get("Event").and_then(|e| clean(e)) {
        Some(event) if msg_type == "event" => format!("event.{}", event.to_ascii_lowercase()),
        _ => msg_type,
    }
}

fn message_id(fields: &BTreeMap<String, String>) -> Option<String> {
    let get = |k: &str| fields.get(k).and_then(|v| clean(v));
    get("MsgId").or_else(|| Some(format!("{}:{}", get("FromUserName")?, get("CreateTime")?)))
}

impl Connector for Wechat {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Wechat
    }

    fn verify(&self, req: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        let is_get = req.method.eq_ignore_ascii_case("GET");
        if !is_get {
            req.require_method("POST")?;
        }
        let timestamp = req.query_param("timestamp").ok_or(WebhookError::MissingSignature("timestamp"))?;
        let nonce = req.query_param("nonce").ok_or(WebhookError::MissingSignature("nonce"))?;
        let safe_mode = !is_get && req.query_param("encrypt_type") == Some("aes");

        if safe_mode {
            let msg_signature =
                req.query_param("msg_signature").ok_or(WebhookError::MissingSignature("msg_signature"))?;
            let outer = parse_xml(req.body).map_err(|_| WebhookError::Malformed("body is not WeChat XML".into()))?;
            let encrypted = outer.get("Encrypt").ok_or_else(|| WebhookError::Malformed("missing Encrypt".into()))?;
            if !self.signed_by_token(msg_signature, &[timestamp, nonce, encrypted]) {
                return Err(WebhookError::BadSignature);
            }
            if self.aes_keys.is_empty() {
                return Err(WebhookError::Malformed("encrypted message but no encoding_aes_key configured".into()));
            }
        } else {
            if !is_get && !self.aes_keys.is_empty() {
                // An EncodingAESKey means WeChat encrypts every push: a plaintext one is forged.
                return Err(WebhookError::MissingSignature("msg_signature"));
            }
            let signature = req.query_param("signature").ok_or(WebhookError::MissingSignature("signature"))?;
            if !self.signed_by_token(signature, &[timestamp, nonce]) {
                return Err(WebhookError::BadSignature);
            }
        }
        let ts =
            parse_unix_secs(timestamp).ok_or_else(|| WebhookError::Malformed("timestamp is not a number".into()))?;
        check_window(ts, now, self.tolerance_secs)?;

        if is_get {
            let echostr =
                req.query_param("echostr").ok_or_else(|| WebhookError::Malformed("missing echostr".into()))?;
            return Ok(WebhookOutcome::Respond(Reply::text(200, echostr)));
        }
        let fields = self.message_fields(req.body)?;
        Ok(WebhookOutcome::Accept {
            event_id: message_id(&fields).unwrap_or_else(|| body_hash_id(req.body)),
            event_type: event_type(&fields),
            ack: Reply::text(200, "success"),
        })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let fields = self
            .message_fields(&event.body)
            .map_err(|e| ParseError::Invalid { format: "WeChat XML", detail: e.to_string() })?;
        let get = |k: &str| fields.get(k).and_then(|v| clean(v));
        let open_id = get("FromUserName").ok_or(ParseError::MissingField("FromUserName"))?;
        let message_id = message_id(&fields).ok_or(ParseError::MissingField("MsgId"))?;
        let message_type = event_type(&fields);
        let text = match get("MsgType").as_deref() {
            Some("text") => get("Content"),
            Some("voice") => get("Recognition"),
            Some("link") => get("Title"),
            Some("location") => get("Label"),
            _ => None,
        };
        Ok(vec![Record::Message(MessageRecord {
            channel: Channel::Wechat,
            direction: Direction::Inbound,
            message_id,
            person: Person { external_id: Some(open_id), ..Person::default() },
            text,
            message_type,
            sent_at: get("CreateTime").as_deref().and_then(parse_unix_secs).and_then(unix_secs),
        })])
    }
}

/// A nonce derived from the inputs (deterministic test requests).
fn nonce_for(body: &[u8], now: DateTime<Utc>) -> String {
    let h = sha256_hex(&[body, now.timestamp().to_string().as_bytes()].concat());
    u64::from_str_radix(h.get(..12).unwrap_or("0"), 16).unwrap_or(0).to_string()
}

fn plain_signature(token: &str, timestamp: &str, nonce: &str, extra: Option<&str>) -> String {
    let mut parts: Vec<&[u8]> = vec![token.as_bytes(), timestamp.as_bytes(), nonce.as_bytes()];
    parts.extend(extra.map(str::as_bytes));
    parts.sort();
    sha1_hex(&parts)
}

pub(crate) fn sign(
    config: &WechatConfig,
    secrets: &Secrets,
    url: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> SignedRequest {
    let token = current(secrets, SECRET);
    let ts = now.timestamp().to_string();
    let nonce = nonce_for(body, now);
    let signature = plain_signature(token, &ts, &nonce, None);
    let fields = parse_xml(body).unwrap_or_default();
    let open_id = fields.get("FromUserName").cloned().unwrap_or_default();
    let to_user = fields.get("ToUserName").cloned().unwrap_or_default();

    let aes = secrets.values(AES_KEY).first().and_then(|k| crypto::aes_key(k).ok());
    let app_id = config.app_id.as_deref().unwrap_or_default();
    let sealed = match (aes, std::str::from_utf8(body)) {
        (Some(key), Ok(xml)) if !app_id.is_empty() => {
            // Deterministic stand-in for WeChat's 16 random bytes.
            let mut random = [0u8; 16];
            random.iter_mut().zip(hex::decode(sha256_hex(body)).unwrap_or_default()).for_each(|(r, d)| *r = d);
            crypto::seal(&key, xml, app_id, random)
        }
        _ => None,
    };
    match sealed {
        Some(encrypted) => {
            let msg_signature = plain_signature(token, &ts, &nonce, Some(&encrypted));
            let envelope = format!(
                "<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            );
            SignedRequest::post(url, envelope.as_bytes()).with_header("content-type", "text/xml").with_query(&[
                ("signature", &signature),
                ("timestamp", &ts),
                ("nonce", &nonce),
                ("openid", &open_id),
                ("encrypt_type", "aes"),
                ("msg_signature", &msg_signature),
            ])
        }
        None => SignedRequest::post(url, body).with_header("content-type", "text/xml").with_query(&[
            ("signature", &signature),
            ("timestamp", &ts),
            ("nonce", &nonce),
            ("openid", &open_id),
        ]),
    }
}

pub(crate) fn handshake(secrets: &Secrets, url: &str, challenge: &str, now: DateTime<Utc>) -> SignedRequest {
    let ts = now.timestamp().to_string();
    let nonce = nonce_for(challenge.as_bytes(), now);
    let signature = plain_signature(current(secrets, SECRET), &ts, &nonce, None);
    SignedRequest::get(url).with_query(&[
        ("signature", &signature),
        ("echostr", challenge),
        ("timestamp", &ts),
        ("nonce", &nonce),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
