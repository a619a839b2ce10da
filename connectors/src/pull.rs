//! Pulling from platform APIs — the translation half.
//!
//! A [`Puller`] knows one platform's list endpoints: given a [`PullPosition`] (the stream,
//! the page token, the lower bound of an incremental pull) it builds the [`HttpRequest`] for
//! one page, and turns the [`HttpResponse`] into normalised records (the same [`Record`]s
//! webhooks produce) and the token of the next page. It does no I/O: the hub sends requests
//! through [`crate::http::PullClient`] (rate limits, retries, circuit breaker) and owns
//! scheduling, cursors and storage.
//!
//! Pull settings live under the `pull` key of a connector's config (see [`PullSettings`]
//! and each platform's `pull` module); pull credentials are secrets like the webhook ones.

use std::cmp::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ConfigError, ConnectorKind, Record};

/// HTTP method of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request to a platform API. `Debug` shows header names only: they carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// Absolute URL including the query string.
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// A JSON body (POST search endpoints).
    pub body: Option<Vec<u8>>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl HttpRequest {
    /// A GET of `url` with these query parameters (encoded here).
    pub fn get(url: &str, query: &[(&str, String)]) -> Self {
        let url = if query.is_empty() {
            url.to_string()
        } else {
            let q = serde_urlencoded::to_string(query).unwrap_or_default();
            if url.contains('?') {
                format!("{url}&{q}")
            } else {
                format!("{url}?{q}")
            }
        };
        Self { method: Method::Get, url, headers: Vec::new(), body: None }
    }

    /// A POST of a JSON body.
    pub fn post_json(url: &str, body: &Value) -> Self {
        Self {
            method: Method::Post,
            url: url.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string().into_bytes()),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
}

/// A platform's answer.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A position in a timestamp-ordered stream: the last record's `(updated_at, id)`.
///
/// Timestamps are not unique, so positions compare on the pair, and an incremental pull
/// keeps only records strictly after the stored watermark: a record sharing the watermark's
/// timestamp but with a greater id is new; one with the same or a smaller id was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub updated_at: DateTime<Utc>,
    pub id: String,
}

impl Watermark {
    pub fn new(updated_at: DateTime<Utc>, id: impl Into<String>) -> Self {
        Self { updated_at, id: id.into() }
    }
}

/// Ids compare numerically when both are integers (Shopify, WooCommerce), else as text.
fn compare_ids(a: &str, b: &str) -> Ordering {
    match (a.parse::<u128>(), b.parse::<u128>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

impl PartialOrd for Watermark {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Watermark {
    fn cmp(&self, other: &Self) -> Ordering {
        self.updated_at.cmp(&other.updated_at).then_with(|| compare_ids(&self.id, &other.id))
    }
}

/// Where a pull stands: which stream, which page, and (incremental pulls) the watermark
/// that records must be after.
#[derive(Debug, Clone, Copy)]
pub struct PullPosition<'a> {
    /// One of [`Puller::streams`].
    pub stream: &'a str,
    /// The token [`PulledPage::next`] returned for this page; `None` for the first page.
    pub page: Option<&'a Value>,
    /// Incremental pulls: only records after this are wanted (a request may ask for a
    /// little more, e.g. an inclusive `updated_at_min`; the hub drops what is not after it).
    /// `None` for a backfill or a first pull.
    pub since: Option<&'a Watermark>,
    /// Records per page (already clamped to the platform's maximum by the puller).
    pub page_size: u32,
}

/// A record and its position in the stream, when the stream is timestamp-ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct PulledRecord {
    pub record: Record,
    /// `(updated_at, id)` of the record; `None` when the platform gives no timestamp.
    pub position: Option<Watermark>,
}

/// One page of a stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PulledPage {
    pub records: Vec<PulledRecord>,
    /// The token of the next page; `None` when this was the last.
    pub next: Option<Value>,
}

/// A request rate: `per_second` requests on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateQuota {
    pub per_second: f64,
    pub burst: u32,
}

/// Where a puller may send requests; the pull client refuses any other host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// The platform's own API hosts: a host must equal one of these or end with
    /// `.` + one of them.
    Platform(&'static [&'static str]),
    /// Self-hosted platforms (WooCommerce): the admin-configured base URL's host only.
    Configured(String),
}

impl HostPolicy {
    /// Whether `host` is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            Self::Platform(suffixes) => {
                suffixes.iter().any(|s| host == *s || host.strip_suffix(s).is_some_and(|p| p.ends_with('.')))
            }
            Self::Configured(h) => host == h.to_ascii_lowercase(),
        }
    }
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The connector is not set up for pulling (missing credential, bad `pull` config).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The platform refused the request for good (401, 403, 404, 400…). `detail` is the
    /// platform's error code or a short excerpt, never credentials.
    #[error("platform answered {status}: {detail}")]
    Status { status: u16, detail: String },
    /// Retries ran out (429 storm, 5xx burst, timeouts).
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
    /// The circuit breaker is open after repeated failures; no request was sent.
    #[error("circuit open after repeated failures; next attempt in {retry_in_secs} s")]
    CircuitOpen { retry_in_secs: u64 },
    /// The URL's host is not one of the platform's.
    #[error("host `{0}` is not allowed for this connector")]
    HostNotAllowed(String),
    /// The response is not what the platform documents.
    #[error("unexpected response: {0}")]
    Parse(String),
}

impl From<crate::ParseError> for PullError {
    fn from(e: crate::ParseError) -> Self {
        PullError::Parse(e.to_string())
    }
}

/// Settings every pull-capable connector accepts under `config.pull` (in addition to its
/// platform fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSettings {
    /// Seconds between scheduled incremental pulls; 0 disables scheduled pulls (on-demand
    /// pulls still work). Default 900.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Requests per second; default: the platform's documented quota.
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Requests allowed at once; default 1 (evenly spaced requests).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Records per page; default and maximum: the platform's maximum.
    #[serde(default)]
    pub page_size: Option<u32>,
}

fn default_interval() -> u64 {
    900
}

impl Default for PullSettings {
    fn default() -> Self {
        Self { interval_secs: default_interval(), rate_per_second: None, burst: None, page_size: None }
    }
}

impl PullSettings {
    /// Check ranges; errors name the field under `pull`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(r) = self.rate_per_second {
            if !(r.is_finite() && r > 0.0 && r <= 10_000.0) {
                return Err(invalid("pull.rate_per_second", "must be > 0 and at most 10000"));
            }
        }
        if self.burst.is_some_and(|b| b == 0 || b > 10_000) {
            return Err(invalid("pull.burst", "must be between 1 and 10000"));
        }
        if self.page_size == Some(0) {
            return Err(invalid("pull.page_size", "must be at least 1"));
        }
        Ok(())
    }

    /// The quota in force: the configured rate, else the platform's default.
    pub fn quota(&self, platform: RateQuota) -> RateQuota {
        RateQuota {
            per_second: self.rate_per_second.unwrap_or(platform.per_second),
            burst: self.burst.unwrap_or(platform.burst).max(1),
        }
    }

    /// The page size in force, clamped to the platform's maximum.
    pub fn page_size(&self, max: u32) -> u32 {
        self.page_size.unwrap_or(max).clamp(1, max)
    }
}

pub(crate) fn invalid(field: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { field: field.into(), reason: reason.into() }
}

/// The `pull` object of a connector config, or `None`.
pub(crate) fn pull_section(config: &Value) -> Option<&Value> {
    config.get("pull").filter(|v| !v.is_null())
}

/// A required secret for pulling.
pub(crate) fn pull_secret(secrets: &crate::Secrets, name: &str) -> Result<String, ConfigError> {
    secrets
        .current
        .get(name)
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
        .ok_or_else(|| ConfigError::MissingSecret(name.into()))
}

/// Validate a base URL: an absolute http(s) URL; returned without a trailing slash.
pub(crate) fn base_url(field: &str, raw: &str) -> Result<(String, String), ConfigError> {
    let parsed = url::Url::parse(raw.trim()).map_err(|_| invalid(field, "must be an absolute URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(invalid(field, "must be an http(s) URL"));
    }
    let host = parsed.host_str().ok_or_else(|| invalid(field, "must name a host"))?.to_string();
    if parsed.query().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(field, "must not carry credentials or a query"));
    }
    Ok((parsed.as_str().trim_end_matches('/').to_string(), host))
}

/// The names of [`PullSettings`] fields.
const SETTINGS_FIELDS: [&str; 4] = ["interval_secs", "rate_per_second", "burst", "page_size"];

/// Read `config.pull` into a platform's pull config `T` (which names its fields in
/// `platform_fields`) and the shared [`PullSettings`]. Unknown fields are refused by name.
pub(crate) fn parse_pull<T: serde::de::DeserializeOwned>(
    config: &Value,
    platform_fields: &[&str],
) -> Result<(T, PullSettings), ConfigError> {
    let section = match pull_section(config) {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("pull", "must be a JSON object")),
    };
    let (mut mine, mut shared) = (serde_json::Map::new(), serde_json::Map::new());
    for (k, v) in section {
        if SETTINGS_FIELDS.contains(&k.as_str()) {
            shared.insert(k, v);
        } else if platform_fields.contains(&k.as_str()) {
            mine.insert(k, v);
        } else {
            return Err(invalid(&format!("pull.{k}"), "unknown field"));
        }
    }
    let settings: PullSettings = crate::registry::parse_config(&Value::Object(shared)).map_err(prefixed)?;
    settings.validate()?;
    let platform: T = crate::registry::parse_config(&Value::Object(mine)).map_err(prefixed)?;
    Ok((platform, settings))
}

fn prefixed(e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid { field, reason } => ConfigError::Invalid { field: format!("pull.{field}"), reason },
        other => other,
    }
}

/// JSON Schema of a `pull` object with these platform properties plus [`PullSettings`].
pub(crate) fn pull_schema(platform: Value) -> Value {
    let mut props = match platform {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let shared = serde_json::json!({
        "interval_secs": {"type": "integer", "minimum": 0, "default": 900, "description": "Seconds between scheduled incremental pulls; 0 disables them."},
        "rate_per_second": {"type": "number", "exclusiveMinimum": 0, "description": "Request rate; default: the platform's documented quota."},
        "burst": {"type": "integer", "minimum": 1, "default": 1, "description": "Requests allowed at once."},
        "page_size": {"type": "integer", "minimum": 1, "description": "Records per page; default and maximum: the platform's."},
    });
    if let Value::Object(m) = shared {
        props.extend(m);
    }
    serde_json::json!({"type": "object", "properties": props, "additionalProperties": false})
}

/// What the HTTP client must know of a platform API besides the request: where requests
/// may go and how the platform signals its rate limits. Every [`Puller`] is one; so is a
/// connector's [`crate::Refetch`].
pub trait Endpoint: Send + Sync {
    /// The hosts requests may go to.
    fn hosts(&self) -> HostPolicy;

    /// Platform rate headers: how long to pause before the next request even though this
    /// one succeeded (Shopify's bucket nearly full, HubSpot's window used up).
    fn throttle(&self, _response: &HttpResponse) -> Option<Duration> {
        None
    }

    /// A platform-specific rate-limit signal in a non-429 answer (e.g. Twilio's 20429 code,
    /// Square's `RATE_LIMITED`); the client treats it as a 429.
    fn is_rate_limited(&self, response: &HttpResponse) -> bool {
        response.status == 429
    }
}

impl<P: Puller + ?Sized> Endpoint for P {
    fn hosts(&self) -> HostPolicy {
        Puller::hosts(self)
    }
    fn throttle(&self, response: &HttpResponse) -> Option<Duration> {
        Puller::throttle(self, response)
    }
    fn is_rate_limited(&self, response: &HttpResponse) -> bool {
        Puller::is_rate_limited(self, response)
    }
}

/// A platform API to pull from. Pure translation: no I/O, no clock.
pub trait Puller: Send + Sync {
    /// Which kind this is.
    fn kind(&self) -> ConnectorKind;

    /// The streams pulled, in order (`customers`, `orders`, …).
    fn streams(&self) -> &'static [&'static str];

    /// The request rate in force (the platform's documented quota unless configured).
    fn quota(&self) -> RateQuota;

    /// The hosts requests may go to.
    fn hosts(&self) -> HostPolicy;

    /// The settings from `config.pull`.
    fn settings(&self) -> &PullSettings;

    /// The request for the page at `pos`.
    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError>;

    /// Records and next-page token from a successful (2xx) response to the request for `pos`.
    fn parse(&self, pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError>;

    /// Platform rate headers: how long to pause before the next request even though this
    /// one succeeded (Shopify's bucket nearly full, HubSpot's window used up).
    fn throttle(&self, _response: &HttpResponse) -> Option<Duration> {
        None
    }

    /// A platform-specific rate-limit signal in a non-429 answer (e.g. Twilio's 20429 code,
    /// Square's `RATE_LIMITED`); the client treats it as a 429.
    fn is_rate_limited(&self, response: &HttpResponse) -> bool {
        response.status == 429
    }
}

/// The `page_info` of the `rel="next"` link of an RFC 8288 `Link` header (Shopify).
pub fn link_next_param(link: &str, param: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        }) {
            return None;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        let url = url::Url::parse(target).ok()?;
        let value = url.query_pairs().find(|(k, _)| k == param).map(|(_, v)| v.into_owned());
        value
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn watermarks_break_ties_on_numeric_ids() {
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert!(Watermark::new(t, "9") < Watermark::new(t, "10"));
        assert!(Watermark::new(t, "10") < Watermark::new(t + chrono::Duration::seconds(1), "1"));
        assert!(Watermark::new(t, "cus_a") < Watermark::new(t, "cus_b"));
        assert_eq!(Watermark::new(t, "5").cmp(&Watermark::new(t, "5")), Ordering::Equal);
    }

    #[test]
    fn hosts_match_the_platform_suffix_only() {
        let p = HostPolicy::Platform(&["myshopify.com"]);
        assert!(p.allows("acme.myshopify.com"));
        assert!(!p.allows("acme.myshopify.com.evil.io"));
        assert!(!p.allows("evilmyshopify.com"));
        assert!(HostPolicy::Configured("shop.example.com".into()).allows("SHOP.example.com"));
    }

    #[test]
    fn the_next_link_gives_its_page_info() {
        let link = r#"<https://a.myshopify.com/admin/api/2024-10/customers.json?limit=2&page_info=abc>; rel="previous", <https://a.myshopify.com/admin/api/2024-10/customers.json?limit=2&page_info=def>; rel="next""#;
        assert_eq!(link_next_param(link, "page_info").as_deref(), Some("def"));
        let only_prev = r#"<https://a.myshopify.com/x?page_info=abc>; rel="previous""#;
        assert_eq!(link_next_param(only_prev, "page_info"), None);
    }

    #[test]
    fn settings_are_checked() {
        let s = PullSettings { rate_per_second: Some(0.0), ..Default::default() };
        assert!(matches!(s.validate(), Err(ConfigError::Invalid { field, .. }) if field == "pull.rate_per_second"));
        let s = PullSettings { page_size: Some(500), ..Default::default() };
        assert_eq!(s.page_size(250), 250);
        let q = PullSettings::default().quota(RateQuota { per_second: 2.0, burst: 1 });
        assert_eq!(q, RateQuota { per_second: 2.0, burst: 1 });
    }
}
