//! Genuine-looking deliveries for tests and load generators.
//!
//! [`sign`] produces what the platform itself would send for a body: the signature headers,
//! the unsigned headers the connector reads (topics, delivery ids), and for the platforms
//! that authenticate through the URL (Jotform's token, WeChat's `signature`/`timestamp`/
//! `nonce`, Twilio's `bodySHA256` for JSON bodies) the query parameters, already appended to
//! the returned URL. For WeChat safe mode it also encrypts the body.
//!
//! ```
//! use junction_connectors::{build, testing, ConnectorKind, Secrets, WebhookOutcome};
//! let mut secrets = Secrets::default();
//! secrets.current.insert("signing_secret".into(), "whsec_test".into());
//! let now = chrono::Utc::now();
//! let body = br#"{"id":"evt_1","type":"customer.created","created":1,"data":{"object":{"id":"cus_1"}}}"#;
//! let signed = testing::sign(ConnectorKind::Stripe, &secrets, "https://hub.example/webhooks/c1", body, now);
//! let connector = build(ConnectorKind::Stripe, &serde_json::Value::Null, &secrets).unwrap();
//! let outcome = connector.verify(&signed.request(), now).unwrap();
//! assert!(matches!(outcome, WebhookOutcome::Accept { event_id, .. } if event_id == "evt_1"));
//! ```
//!
//! Signing uses the *current* secret. A missing secret signs with an empty key, which no
//! connector accepts (they refuse empty secrets), so the delivery is refused rather than the
//! helper panicking. Nothing here reads a clock or a random source: the same inputs give the
//! same request, so a re-sent request is a platform retry with the same event id.

use chrono::{DateTime, Utc};

use crate::registry::parse_config;
use crate::{
    generic_hmac, hubspot, jotform, shopify, slack, square, standard_webhooks, stripe, twilio, typeform, wechat,
    whatsapp, woocommerce, ConfigError, ConnectorKind, Secrets, StoredEvent, WebhookRequest,
};

/// A complete HTTP request as a platform would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `POST`, or `GET` for handshakes.
    pub method: &'static str,
    /// The URL to call: the given URL plus [`SignedRequest::extra_query`].
    pub url: String,
    /// Headers to send (lower-case names), including `content-type`.
    pub headers: Vec<(String, String)>,
    /// Query parameters this helper appended to the URL (already in `url`).
    pub extra_query: Vec<(String, String)>,
    /// Every query parameter of `url`, decoded, in order: what the hub passes as
    /// [`WebhookRequest::query`].
    pub query: Vec<(String, String)>,
    /// The body to send (the input, or its encrypted envelope in WeChat safe mode).
    pub body: Vec<u8>,
}

impl SignedRequest {
    /// A POST of `body` to `url` with a content type guessed from the body.
    pub fn post(url: &str, body: &[u8]) -> Self {
        let mut r = Self {
            method: "POST",
            url: url.to_string(),
            headers: Vec::new(),
            extra_query: Vec::new(),
            query: query_of(url),
            body: body.to_vec(),
        };
        r.headers.push(("content-type".into(), guess_content_type(body)));
        r
    }

    /// A GET of `url` without a body.
    pub fn get(url: &str) -> Self {
        Self {
            method: "GET",
            url: url.to_string(),
            headers: Vec::new(),
            extra_query: Vec::new(),
            query: query_of(url),
            body: Vec::new(),
        }
    }

    /// Add (or replace) a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.into()));
        self
    }

    /// Append query parameters to the URL.
    pub fn with_query(mut self, params: &[(&str, &str)]) -> Self {
        let (base, fragment) = match self.url.split_once('#') {
            Some((b, f)) => (b.to_string(), Some(f.to_string())),
            None => (self.url.clone(), None),
        };
        let mut url = base;
        for (k, v) in params {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.extend(url::form_urlencoded::byte_serialize(k.as_bytes()));
            url.push('=');
            url.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
            self.extra_query.push((k.to_string(), v.to_string()));
        }
        if let Some(f) = fragment {
            url.push('#');
            url.push_str(&f);
        }
        self.query = query_of(&url);
        self.url = url;
        self
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The request as the hub hands it to [`crate::Connector::verify`].
    pub fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            method: self.method,
            url: &self.url,
            headers: &self.headers,
            query: &self.query,
            body: &self.body,
        }
    }

    /// The inbox row the hub would store for this request.
    pub fn stored(&self, event_id: &str, event_type: &str, received_at: DateTime<Utc>) -> StoredEvent {
        StoredEvent {
            event_id: event_id.to_string(),
            event_type: event_type.to_string(),
            headers: self.headers.clone(),
            query: self.query.clone(),
            body: self.body.clone(),
            received_at,
        }
    }
}

/// Sign `body` for delivery to `url` as platform `kind` would, with the connector's default
/// config (see [`sign_with_config`] for the kinds whose signature depends on config).
///
/// Per kind, the result carries:
/// - shopify: `x-shopify-hmac-sha256`, `x-shopify-topic` (guessed from the body: an order,
///   a customer, a privacy request), `x-shopify-event-id`, `x-shopify-webhook-id`, …
/// - woocommerce: `x-wc-webhook-signature`, `x-wc-webhook-topic` (guessed), `-resource`,
///   `-event`, `-id`, `-delivery-id`, `-source`.
/// - stripe: `stripe-signature: t=<now>,v1=<hex>`.
/// - square: `x-square-hmacsha256-signature` over `url` + body.
/// - typeform: `typeform-signature: sha256=<base64>`.
/// - jotform: query `token=<url_token>` appended to the URL.
/// - twilio: `x-twilio-signature`; a JSON body gets `bodySHA256=<hex>` appended to the URL
///   first, a form body is signed as URL + sorted params.
/// - whatsapp: `x-hub-signature-256: sha256=<hex>`.
/// - slack: `x-slack-signature`, `x-slack-request-timestamp`.
/// - wechat: query `signature`, `timestamp`, `nonce`, `openid`: plaintext mode. Safe mode
///   (the secrets hold `encoding_aes_key`) needs the `app_id` of the config: use
///   [`sign_with_config`]; a connector with an EncodingAESKey refuses plaintext pushes.
/// - standard_webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
/// - generic_hmac: per [`generic_hmac::GenericHmacConfig::default`] (`x-signature:
///   sha256=<hex>` over the body).
///
/// Unsigned headers (topics, delivery ids) may be replaced freely with
/// [`SignedRequest::with_header`].
pub fn sign(kind: ConnectorKind, secrets: &Secrets, url: &str, body: &[u8], now: DateTime<Utc>) -> SignedRequest {
    // The default config of every kind parses, so this never falls back in practice.
    sign_with_config(kind, &serde_json::Value::Null, secrets, url, body, now)
        .unwrap_or_else(|_| SignedRequest::post(url, body))
}

/// Like [`sign`], honouring the connector's config: generic_hmac's header, algorithm,
/// encoding, prefix, template and timestamp header; Stripe/Slack nothing more; WeChat safe
/// mode when the config has `app_id` and the secrets hold `encoding_aes_key` (the body is
/// then the plaintext XML, encrypted here). A `null` config means the defaults.
pub fn sign_with_config(
    kind: ConnectorKind,
    config: &serde_json::Value,
    secrets: &Secrets,
    url: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<SignedRequest, ConfigError> {
    Ok(match kind {
        ConnectorKind::Shopify => shopify::sign(secrets, url, body, now),
        ConnectorKind::Woocommerce => woocommerce::sign(secrets, url, body, now),
        ConnectorKind::Stripe => stripe::sign(secrets, url, body, now),
        ConnectorKind::Square => square::sign(secrets, url, body, now),
        ConnectorKind::Typeform => typeform::sign(secrets, url, body, now),
        ConnectorKind::Jotform => jotform::sign(secrets, url, body, now),
        ConnectorKind::Twilio => twilio::sign(secrets, url, body, now),
        ConnectorKind::Whatsapp => whatsapp::sign(secrets, url, body, now),
        ConnectorKind::Slack => slack::sign(secrets, url, body, now),
        ConnectorKind::Wechat => wechat::sign(&parse_config(config)?, secrets, url, body, now),
        ConnectorKind::StandardWebhooks => standard_webhooks::sign(secrets, url, body, now),
        ConnectorKind::Hubspot => hubspot::sign(secrets, url, body, now),
        ConnectorKind::GenericHmac => {
            let cfg = if config.is_null() { generic_hmac::GenericHmacConfig::default() } else { parse_config(config)? };
            generic_hmac::sign(&cfg, secrets, url, body, now)
        }
    })
}

/// The setup handshake a platform performs when a webhook URL is registered, for the kinds
/// that have one answered by GET: WhatsApp (`hub.mode=subscribe`, `hub.verify_token`,
/// `hub.challenge`) and WeChat (`signature`, `timestamp`, `nonce`, `echostr`). The connector
/// answers it with `challenge` as the body. Other kinds: `None` (Slack's `url_verification`
/// is a signed POST: use [`sign`] on its body).
pub fn handshake(
    kind: ConnectorKind,
    secrets: &Secrets,
    url: &str,
    challenge: &str,
    now: DateTime<Utc>,
) -> Option<SignedRequest> {
    match kind {
        ConnectorKind::Whatsapp => Some(whatsapp::handshake(secrets, url, challenge)),
        ConnectorKind::Wechat => Some(wechat::handshake(secrets, url, challenge, now)),
        _ => None,
    }
}

/// A `multipart/form-data` body of text fields, as Jotform posts them: returns the content
/// type (with its boundary) and the body.
pub fn multipart_form(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "------------------------junction7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The content type a platform would send with this body.
pub fn guess_content_type(body: &[u8]) -> String {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        "application/json".into()
    } else if trimmed.starts_with(b"<") {
        "text/xml".into()
    } else if body.starts_with(b"--") {
        let first_line = body.split(|b| *b == b'\n').next().unwrap_or_default();
        let boundary = String::from_utf8_lossy(first_line.get(2..).unwrap_or_default());
        format!("multipart/form-data; boundary={}", boundary.trim_end())
    } else {
        "application/x-www-form-urlencoded".into()
    }
}

/// A deterministic id derived from the body and a salt, for the delivery-id headers.
pub(crate) fn derived_id(body: &[u8], salt: &str) -> String {
    let h = crate::signature::sha256_hex(&[salt.as_bytes(), b":", body].concat());
    h.get(..24).unwrap_or(&h).to_string()
}

fn query_of(url: &str) -> Vec<(String, String)> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    match without_fragment.split_once('?') {
        Some((_, q)) => url::form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        None => Vec::new(),
    }
}

/// The secret's current value, or empty (which no connector accepts).
pub(crate) fn current<'a>(secrets: &'a Secrets, name: &str) -> &'a str {
    secrets.values(name).first().copied().unwrap_or("")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn with_query_appends_and_decodes() {
        let r = SignedRequest::post("https://h.example/w?a=1#frag", b"{}").with_query(&[("token", "a b&c")]);
        assert_eq!(r.url, "https://h.example/w?a=1&token=a+b%26c#frag");
        assert_eq!(r.query, vec![("a".into(), "1".into()), ("token".into(), "a b&c".into())]);
        assert_eq!(r.extra_query, vec![("token".into(), "a b&c".into())]);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    #[test]
    fn content_type_guesses() {
        assert_eq!(guess_content_type(b"<xml/>"), "text/xml");
        assert_eq!(guess_content_type(b"a=1"), "application/x-www-form-urlencoded");
        let (ct, body) = multipart_form(&[("a", "1")]);
        assert_eq!(guess_content_type(&body), ct);
        assert_eq!(crate::form::parse(Some(&ct), &body).unwrap(), vec![("a".into(), "1".into())]);
    }
}
