//! Platform knowledge for Junction, and nothing about the store.
//!
//! A connector turns the bytes a platform sends (a webhook) into typed, normalised
//! [`Record`]s, after verifying the request exactly as the platform signs it. It never
//! sees the database: the hub owns storage, scheduling, retries and identity resolution.
//!
//! The registry is closed: [`ConnectorKind`] lists every kind and [`build`] is the one
//! `match` that constructs a connector from its config and secrets.
//!
//! | kind | secrets | config | event id |
//! |---|---|---|---|
//! | `shopify` | `client_secret` | — | `X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id` |
//! | `woocommerce` | `webhook_secret` | — | `{topic}:{id}:{date_modified_gmt}` |
//! | `stripe` | `signing_secret` | `tolerance_secs` | `event.id` |
//! | `square` | `signature_key` | — | `event_id` |
//! | `typeform` | `secret` | — | `event_id`, else `form_response.token` |
//! | `jotform` | `url_token`, optional `api_key` | `refetch`, `api_base` | `submissionID` |
//! | `twilio` | `auth_token` | — | `MessageSid` (`:status` for callbacks) |
//! | `whatsapp` | `app_secret`, `verify_token` | — | the message id, or `id:status` |
//! | `slack` | `signing_secret` | `tolerance_secs` | `event_id` |
//! | `wechat` | `token`, optional `encoding_aes_key` | `app_id`, `tolerance_secs` | `MsgId`, else `FromUserName:CreateTime` |
//! | `standard_webhooks` | `secret` | `tolerance_secs` | `webhook-id` |
//! | `hubspot` | `client_secret` | `tolerance_secs` | `eventId` (single-event deliveries) |
//! | `generic_hmac` | `secret` | see [`generic_hmac::GenericHmacConfig`] | header or JSON pointer |
//!
//! Kinds that can also pull from the platform's API read their pull settings from
//! `config.pull` and their API credential from a secret; see [`pull`] and [`build_puller`].
//!
//! Without an id of its own a delivery's dedupe key is `sha256:<hex of the raw body>`.
//! Each platform module documents exactly what is signed; [`testing::sign`] produces
//! deliveries a genuine platform would send.

pub mod form;
pub mod http;
pub(crate) mod payload;
pub mod pull;
pub mod record;
pub mod refetch;
pub mod registry;
pub mod signature;
#[cfg(test)]
mod test_support;
pub mod testing;

pub mod generic_hmac;
pub mod hubspot;
pub mod jotform;
pub mod shopify;
pub mod slack;
pub mod square;
pub mod standard_webhooks;
pub mod stripe;
pub mod twilio;
pub mod typeform;
pub mod wechat;
pub mod whatsapp;
pub mod woocommerce;

pub use pull::{PullError, Puller};
pub use record::*;
pub use refetch::{Refetch, RefetchError};
pub use registry::{build, build_puller, ConnectorKind, KindDescriptor, UnknownKind};

use chrono::{DateTime, Utc};

/// An incoming webhook request as the hub received it, before any parsing.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// Upper-case HTTP method (`GET`, `POST`).
    pub method: &'a str,
    /// The public URL the platform called, including the query string. Built from the
    /// hub's configured public base URL so that schemes signing the URL (Square, Twilio)
    /// verify behind a proxy.
    pub url: &'a str,
    /// Header names in lower case, values as received.
    pub headers: &'a [(String, String)],
    /// Decoded query parameters, in the order received.
    pub query: &'a [(String, String)],
    /// The raw body bytes, exactly as received.
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first query parameter with this name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first header present among `names` (platforms that renamed their headers).
    pub fn header_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.header(n))
    }

    /// Refuse any method but `method`.
    pub fn require_method(&self, method: &str) -> Result<(), WebhookError> {
        if self.method.eq_ignore_ascii_case(method) {
            Ok(())
        } else {
            Err(WebhookError::MethodNotAllowed)
        }
    }
}

/// What the hub should do with a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A handshake or ping the platform expects answered directly (WhatsApp
    /// `hub.challenge`, Slack `url_verification`, WeChat `echostr`, WooCommerce creation
    /// ping). Nothing is stored.
    Respond(Reply),
    /// A verified event: the hub stores it in the inbox (deduplicated on `event_id`) and,
    /// once committed, answers with `ack`.
    Accept {
        /// The platform's id for this delivery, stable across its retries.
        event_id: String,
        /// The platform's event type or topic (`orders/create`, `customer.created`, …).
        event_type: String,
        /// What to answer once the event is durably stored.
        ack: Reply,
    },
}

/// A direct HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body, sent as is.
    pub body: Vec<u8>,
}

impl Reply {
    /// `200 OK` with an empty body.
    pub fn ok() -> Self {
        Self::text(200, "")
    }

    /// A `text/plain` answer.
    pub fn text(status: u16, body: &str) -> Self {
        Self { status, content_type: "text/plain; charset=utf-8", body: body.as_bytes().to_vec() }
    }
}

/// Why a webhook was refused. Messages never contain secrets or payload data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The header or query parameter carrying the signature (or a signed part of it, such
    /// as a timestamp or token) is absent. Suggested status: 401.
    #[error("missing signature: expected header or parameter `{0}`")]
    MissingSignature(&'static str),
    /// No configured secret (current or previous) produces the signature. Suggested status: 401.
    #[error("signature does not match")]
    BadSignature,
    /// The signature is valid but its timestamp is too far from now: a replay, or a clock
    /// that drifted. Suggested status: 401.
    #[error("timestamp outside the allowed window of {tolerance_secs} s")]
    StaleTimestamp { tolerance_secs: i64 },
    /// The request is not shaped as the platform sends it (unparsable framing, missing
    /// handshake fields, undecryptable payload). The message is fixed text. Suggested status: 400.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The platform never uses this method here. Suggested status: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
}

/// Why a stored event could not be turned into records.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The stored body is not valid in the platform's format; `detail` gives a position or
    /// a framing problem, never content.
    #[error("payload is not valid {format}: {detail}")]
    Invalid { format: &'static str, detail: String },
    /// A field the record cannot exist without (an order id, a form id) is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
}

/// Why a connector could not be built from its configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A config field (or a secret, named by its field) has an unusable value.
    #[error("config field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    /// A required secret is not set.
    #[error("missing secret `{0}`")]
    MissingSecret(String),
}

/// An inbox row handed back to the connector for parsing.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The `event_id` that [`Connector::verify`] returned.
    pub event_id: String,
    /// The `event_type` that [`Connector::verify`] returned.
    pub event_type: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// Decoded query parameters, as received (some platforms put data there).
    pub query: Vec<(String, String)>,
    /// The raw body, exactly as received (WeChat safe mode: still encrypted).
    pub body: Vec<u8>,
    /// When the hub received it; stands in for platforms that send no timestamp.
    pub received_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The first header with this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first header present among `names`.
    pub fn header_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.header(n))
    }

    /// The first query parameter with this name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The secrets a connector verifies with. During a rotation grace period `previous`
/// holds the old secret and either one verifies.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Secret name → value (names per kind: [`KindDescriptor::secret_fields`]).
    pub current: std::collections::BTreeMap<String, String>,
    /// The values being rotated out, still accepted until the grace period ends.
    pub previous: Option<std::collections::BTreeMap<String, String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("current", &self.current.keys().collect::<Vec<_>>())
            .field("previous", &self.previous.as_ref().map(|p| p.keys().count()))
            .finish()
    }
}

impl Secrets {
    /// Every value held for `name`, current first, then the one in its grace period.
    pub fn values(&self, name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = self.current.get(name).map(String::as_str).into_iter().collect();
        if let Some(prev) = self.previous.as_ref().and_then(|p| p.get(name)) {
            out.push(prev.as_str());
        }
        out
    }
}

/// A platform integration: verifies webhooks and parses stored events.
///
/// Implementations are pure translation: no I/O, no clocks (`now` is passed in), no store.
pub trait Connector: Send + Sync {
    /// Which kind this is.
    fn kind(&self) -> ConnectorKind;

    /// Verify a request over its raw bytes, before any parsing of the payload. Returns what
    /// to do with it, or why it is refused (nothing is stored then).
    fn verify(&self, req: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError>;

    /// Turn a stored, verified event into normalised records. An event the hub need not
    /// act on (an unknown topic) yields an empty vector, not an error.
    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError>;

    /// When set up to, the API read that replaces [`Connector::parse`]: the hub fetches the
    /// event's subject from the platform and applies what [`Refetch::parse`] makes of the
    /// answer (see [`refetch`]). `None` (the default): the delivery is applied as sent.
    fn refetch(&self) -> Option<&dyn Refetch> {
        None
    }
}
