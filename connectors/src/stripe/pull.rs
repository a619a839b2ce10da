//! Stripe pull: `GET /v1/customers` and `GET /v1/checkout/sessions?status=complete`.
//!
//! Lists run newest first; `limit` ≤ 100, `starting_after=<last id>` while `has_more`.
//! Incremental pulls ask for `created[gte]` the watermark (Stripe lists have no "updated"
//! filter, so an incremental pull brings new objects; updates arrive by webhook).
//! Credential: a secret or restricted key (`api_key`, sent as a Bearer token).
//! Quota: 25 requests/s in test mode (100 live); default 20/s.

use serde::Deserialize;
use serde_json::Value;

use crate::payload::{field, from_json, unix_secs};
use crate::pull::{
    base_url, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse, PullError, PullPosition,
    PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{ConfigError, ConnectorKind, Record, Secrets};

/// The secret holding the API key.
pub const PULL_SECRET: &str = "api_key";
const STREAMS: [&str; 2] = ["customers", "checkout_sessions"];
const FIELDS: [&str; 1] = ["base_url"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripePullConfig {
    /// Default `https://api.stripe.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

pub fn schema() -> Value {
    pull_schema(
        serde_json::json!({"base_url": {"type": "string", "format": "uri", "default": "https://api.stripe.com"}}),
    )
}

pub fn check(config: &Value) -> Result<(), ConfigError> {
    let (c, _) = parse_pull::<StripePullConfig>(config, &FIELDS)?;
    if let Some(u) = c.base_url {
        base_url("pull.base_url", &u)?;
    }
    Ok(())
}

/// Pulls customers and completed checkout sessions.
#[derive(Debug)]
pub struct StripePull {
    base: String,
    key: String,
    settings: PullSettings,
}

impl StripePull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<StripePullConfig>(config, &FIELDS)?;
        let base = match c.base_url {
            Some(u) => base_url("pull.base_url", &u)?.0,
            None => "https://api.stripe.com".into(),
        };
        Ok(Self { base, key: pull_secret(secrets, PULL_SECRET)?, settings })
    }
}

impl Puller for StripePull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Stripe
    }
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }
    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 20.0, burst: 1 })
    }
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&["api.stripe.com"])
    }
    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let path = if pos.stream == "customers" { "/v1/customers" } else { "/v1/checkout/sessions" };
        let mut q = vec![("limit", pos.page_size.min(100).to_string())];
        if pos.stream == "checkout_sessions" {
            q.push(("status", "complete".into()));
        }
        if let Some(after) = pos.page.and_then(Value::as_str) {
            q.push(("starting_after", after.to_string()));
        }
        if let Some(since) = pos.since {
            q.push(("created[gte]", since.updated_at.timestamp().to_string()));
        }
        Ok(HttpRequest::get(&format!("{}{path}", self.base), &q)
            .with_header("authorization", format!("Bearer {}", self.key)))
    }

    fn parse(&self, pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let body: Value = from_json(&response.body)?;
        let items =
            body.get("data").and_then(Value::as_array).ok_or_else(|| PullError::Parse("no `data` array".into()))?;
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let record = if pos.stream == "customers" {
                Record::Customer(super::customer(item, None)?)
            } else {
                Record::Order(super::checkout_session(item, None)?)
            };
            let position = item
                .get("created")
                .and_then(Value::as_i64)
                .and_then(unix_secs)
                .zip(field(item, "id"))
                .map(|(t, id)| Watermark::new(t, id));
            records.push(PulledRecord { record, position });
        }
        let more = body.get("has_more").and_then(Value::as_bool).unwrap_or(false);
        let next = if more { items.last().and_then(|i| field(i, "id")).map(Value::String) } else { None };
        Ok(PulledPage { records, next })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    #[test]
    fn pages_follow_starting_after_while_has_more() {
        let p = StripePull::new(&serde_json::json!({"pull": {}}), &secrets(&[("api_key", "sk_test_x")])).unwrap();
        let token = Value::String("cus_2".into());
        let req =
            p.request(&PullPosition { stream: "customers", page: Some(&token), since: None, page_size: 500 }).unwrap();
        assert_eq!(req.url, "https://api.stripe.com/v1/customers?limit=100&starting_after=cus_2");
        let body = serde_json::json!({"object": "list", "has_more": true, "data": [
            {"id": "cus_3", "object": "customer", "email": "a@acme.io", "name": "Ada Lovelace", "created": 1700000000},
        ]});
        let resp = HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
        let page =
            p.parse(&PullPosition { stream: "customers", page: None, since: None, page_size: 10 }, &resp).unwrap();
        assert_eq!(page.next, Some(Value::String("cus_3".into())));
        let Record::Customer(c) = &page.records[0].record else { panic!() };
        assert_eq!(c.person.external_id.as_deref(), Some("cus_3"));
        assert_eq!(c.person.emails, vec!["a@acme.io".to_string()]);
    }
}
