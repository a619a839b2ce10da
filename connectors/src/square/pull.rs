//! Square pull: `POST /v2/customers/search`, filtered by `updated_at` (incremental),
//! `cursor` pagination, `limit` ≤ 100. Credential: an access token (`access_token`, Bearer),
//! with `Square-Version`. Square documents no quota; 429 `RATE_LIMITED` answers are retried
//! with backoff and jitter. Default 10 requests/s.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::payload::{field, from_json, rfc3339};
use crate::pull::{
    base_url, invalid, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse, PullError,
    PullPosition, PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{ConfigError, ConnectorKind, Record, Secrets};

pub const PULL_SECRET: &str = "access_token";
const STREAMS: [&str; 1] = ["customers"];
const FIELDS: [&str; 3] = ["environment", "base_url", "api_version"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquarePullConfig {
    /// `production` (default) or `sandbox`.
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    /// `Square-Version`; default `2024-10-17`.
    #[serde(default)]
    pub api_version: Option<String>,
}

pub fn schema() -> Value {
    pull_schema(json!({
        "environment": {"type": "string", "enum": ["production", "sandbox"], "default": "production"},
        "base_url": {"type": "string", "format": "uri"},
        "api_version": {"type": "string", "default": "2024-10-17"},
    }))
}

fn base_of(c: &SquarePullConfig) -> Result<String, ConfigError> {
    if let Some(u) = &c.base_url {
        return Ok(base_url("pull.base_url", u)?.0);
    }
    match c.environment.as_deref().unwrap_or("production") {
        "production" => Ok("https://connect.squareup.com".into()),
        "sandbox" => Ok("https://connect.squareupsandbox.com".into()),
        _ => Err(invalid("pull.environment", "must be `production` or `sandbox`")),
    }
}

pub fn check(config: &Value) -> Result<(), ConfigError> {
    base_of(&parse_pull::<SquarePullConfig>(config, &FIELDS)?.0).map(|_| ())
}

#[derive(Debug)]
pub struct SquarePull {
    base: String,
    version: String,
    token: String,
    settings: PullSettings,
}

impl SquarePull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<SquarePullConfig>(config, &FIELDS)?;
        let base = base_of(&c)?;
        let version = c.api_version.unwrap_or_else(|| "2024-10-17".into());
        Ok(Self { base, version, token: pull_secret(secrets, PULL_SECRET)?, settings })
    }
}

impl Puller for SquarePull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Square
    }
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }
    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 10.0, burst: 1 })
    }
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&["connect.squareup.com", "connect.squareupsandbox.com"])
    }
    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let mut body = json!({"limit": pos.page_size.min(100)});
        if let Some(c) = pos.page.and_then(Value::as_str) {
            body["cursor"] = json!(c);
        }
        if let Some(since) = pos.since {
            body["query"] = json!({"filter": {"updated_at": {"start_at": since.updated_at.to_rfc3339()}}});
        }
        Ok(HttpRequest::post_json(&format!("{}/v2/customers/search", self.base), &body)
            .with_header("authorization", format!("Bearer {}", self.token))
            .with_header("square-version", self.version.clone()))
    }

    fn parse(&self, _pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let body: Value = from_json(&response.body)?;
        let items = body.get("customers").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            let position = field(item, "updated_at")
                .as_deref()
                .and_then(rfc3339)
                .zip(field(item, "id"))
                .map(|(t, id)| Watermark::new(t, id));
            records.push(PulledRecord { record: Record::Customer(super::customer(item)?), position });
        }
        let next = field(&body, "cursor").map(Value::String);
        Ok(PulledPage { records, next })
    }

    fn is_rate_limited(&self, response: &HttpResponse) -> bool {
        response.status == 429
            || (response.status >= 400
                && serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|v| v.pointer("/errors/0/code").and_then(Value::as_str).map(|c| c == "RATE_LIMITED"))
                    .unwrap_or(false))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    #[test]
    fn search_filters_on_updated_at_and_follows_the_cursor() {
        let p = SquarePull::new(&json!({"pull": {"environment": "sandbox"}}), &secrets(&[("access_token", "EAAA")]))
            .unwrap();
        let since = Watermark::new(rfc3339("2024-05-01T10:00:00Z").unwrap(), "X");
        let c = Value::String("cur1".into());
        let req = p
            .request(&PullPosition { stream: "customers", page: Some(&c), since: Some(&since), page_size: 500 })
            .unwrap();
        assert_eq!(req.url, "https://connect.squareupsandbox.com/v2/customers/search");
        let body: Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["limit"], 100);
        assert_eq!(body["cursor"], "cur1");
        assert_eq!(body["query"]["filter"]["updated_at"]["start_at"], "2024-05-01T10:00:00+00:00");
        let event: Value = serde_json::from_slice(include_bytes!("fixtures/customer_created.json")).unwrap();
        let customer = event.pointer("/data/object/customer").unwrap().clone();
        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body: json!({"customers": [customer], "cursor": "cur2"}).to_string().into_bytes(),
        };
        let page =
            p.parse(&PullPosition { stream: "customers", page: None, since: None, page_size: 1 }, &resp).unwrap();
        assert_eq!(page.next, Some(Value::String("cur2".into())));
        assert_eq!(page.records.len(), 1);
        let limited =
            HttpResponse { status: 400, headers: vec![], body: br#"{"errors":[{"code":"RATE_LIMITED"}]}"#.to_vec() };
        assert!(p.is_rate_limited(&limited));
    }
}
