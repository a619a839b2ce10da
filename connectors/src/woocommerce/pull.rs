//! WooCommerce pull (REST API v3): `/wp-json/wc/v3/customers` and `/orders`.
//!
//! Self-hosted: the admin configures the store's `base_url` and requests may go to its host
//! only. `page`/`per_page` (≤ 100) with `X-WP-TotalPages`. Orders are read by `modified`
//! ascending and, incrementally, `modified_after` one second before the watermark (the hub
//! drops what it has seen by `(date_modified_gmt, id)`); a record modified during a pull
//! moves to the end of that order, so the next pull picks it up. Customers have no
//! modification filter: every pull lists them and the hub keeps only the changed ones.
//! Credentials: `consumer_key` and `consumer_secret` (HTTP Basic over https).
//! Core WooCommerce has no rate limit; the default is a gentle 5 requests/s.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::payload::{field, from_json, utc_naive};
use crate::pull::{
    base_url, invalid, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse, PullError,
    PullPosition, PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{ConfigError, ConnectorKind, Record, Secrets};

/// The REST API key pair.
pub const PULL_SECRETS: [&str; 2] = ["consumer_key", "consumer_secret"];
const STREAMS: [&str; 2] = ["customers", "orders"];
const FIELDS: [&str; 1] = ["base_url"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WoocommercePullConfig {
    /// The store's URL, e.g. `https://shop.example.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

pub fn schema() -> Value {
    pull_schema(
        serde_json::json!({"base_url": {"type": "string", "format": "uri", "description": "The store's URL (required to pull)."}}),
    )
}

fn base_of(c: &WoocommercePullConfig) -> Result<(String, String), ConfigError> {
    let raw = c.base_url.as_deref().ok_or_else(|| invalid("pull.base_url", "required to pull"))?;
    base_url("pull.base_url", raw)
}

pub fn check(config: &Value) -> Result<(), ConfigError> {
    base_of(&parse_pull::<WoocommercePullConfig>(config, &FIELDS)?.0).map(|_| ())
}

/// Pulls customers and orders from one store.
#[derive(Debug)]
pub struct WoocommercePull {
    base: String,
    host: String,
    auth: String,
    settings: PullSettings,
}

impl WoocommercePull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<WoocommercePullConfig>(config, &FIELDS)?;
        let (base, host) = base_of(&c)?;
        let pair = format!("{}:{}", pull_secret(secrets, PULL_SECRETS[0])?, pull_secret(secrets, PULL_SECRETS[1])?);
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        Ok(Self { base, host, auth, settings })
    }
}

impl Puller for WoocommercePull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Woocommerce
    }
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }
    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 5.0, burst: 1 })
    }
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Configured(self.host.clone())
    }
    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let page = pos.page.and_then(Value::as_u64).unwrap_or(1);
        let mut q = vec![("per_page", pos.page_size.min(100).to_string()), ("page", page.to_string())];
        if pos.stream == "orders" {
            q.push(("orderby", "modified".into()));
            q.push(("order", "asc".into()));
            if let Some(since) = pos.since {
                let after = since.updated_at - chrono::Duration::seconds(1);
                q.push(("modified_after", after.format("%Y-%m-%dT%H:%M:%S").to_string()));
                q.push(("dates_are_gmt", "true".into()));
            }
        } else {
            q.push(("orderby", "id".into()));
            q.push(("order", "asc".into()));
        }
        Ok(HttpRequest::get(&format!("{}/wp-json/wc/v3/{}", self.base, pos.stream), &q)
            .with_header("authorization", self.auth.clone()))
    }

    fn parse(&self, pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let items: Vec<Value> = from_json(&response.body)?;
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            let record = if pos.stream == "customers" {
                Record::Customer(super::customer(item)?)
            } else {
                Record::Order(super::order(item)?)
            };
            let position = field(item, "date_modified_gmt")
                .as_deref()
                .and_then(utc_naive)
                .zip(field(item, "id"))
                .map(|(t, id)| Watermark::new(t, id));
            records.push(PulledRecord { record, position });
        }
        let page = pos.page.and_then(Value::as_u64).unwrap_or(1);
        let total: u64 = response.header("x-wp-totalpages").and_then(|t| t.trim().parse().ok()).unwrap_or(page);
        let next = (page < total && !items.is_empty()).then(|| Value::from(page + 1));
        Ok(PulledPage { records, next })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    #[test]
    fn pages_count_up_to_total_pages_and_orders_filter_on_modified_after() {
        let s = secrets(&[("consumer_key", "ck_1"), ("consumer_secret", "cs_1")]);
        let p = WoocommercePull::new(&serde_json::json!({"pull": {"base_url": "https://shop.acme.io/"}}), &s).unwrap();
        assert!(p.hosts().allows("shop.acme.io"));
        let since = Watermark::new(crate::payload::rfc3339("2024-05-01T10:00:00Z").unwrap(), "7");
        let req =
            p.request(&PullPosition { stream: "orders", page: None, since: Some(&since), page_size: 20 }).unwrap();
        assert_eq!(req.url, "https://shop.acme.io/wp-json/wc/v3/orders?per_page=20&page=1&orderby=modified&order=asc&modified_after=2024-05-01T09%3A59%3A59&dates_are_gmt=true");
        let body = include_bytes!("fixtures/customer_created.json");
        let one: Value = serde_json::from_slice(body).unwrap();
        let resp = HttpResponse {
            status: 200,
            headers: vec![("x-wp-totalpages".into(), "3".into())],
            body: serde_json::to_vec(&vec![one]).unwrap(),
        };
        let page_two = Value::from(2);
        let page = p
            .parse(&PullPosition { stream: "customers", page: Some(&page_two), since: None, page_size: 20 }, &resp)
            .unwrap();
        assert_eq!(page.next, Some(Value::from(3)));
        assert!(matches!(page.records[0].record, Record::Customer(_)));
        let err = WoocommercePull::new(&serde_json::json!({"pull": {}}), &s).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == "pull.base_url"));
    }
}
