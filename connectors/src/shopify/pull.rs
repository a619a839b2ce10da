//! Shopify pull (REST Admin API): `customers.json` and `orders.json`.
//!
//! First page: `limit`, `order=updated_at asc` and, for incremental pulls,
//! `updated_at_min` (inclusive; the hub drops what it has seen by `(updated_at, id)`).
//! Following pages: only `limit` and the `page_info` of the `Link: <…>; rel="next"` header,
//! as Shopify requires. Credential: the Admin API access token (`X-Shopify-Access-Token`).
//! Quota: the leaky bucket of 40 calls leaking 2/s (Plus: 80 and 4/s), so 2 requests/s by
//! default; `X-Shopify-Shop-Api-Call-Limit: used/size` pauses the client when the bucket is
//! more than 80 % full.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::payload::{field, from_json, rfc3339};
use crate::pull::{
    base_url, invalid, link_next_param, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse,
    PullError, PullPosition, PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{ConfigError, ConnectorKind, Record, Secrets};

/// The secret holding the Admin API access token.
pub const PULL_SECRET: &str = "access_token";
/// Largest `limit` Shopify accepts.
pub const MAX_PAGE: u32 = 250;
const STREAMS: [&str; 2] = ["customers", "orders"];
const FIELDS: [&str; 3] = ["shop", "base_url", "api_version"];

/// `config.pull` of a Shopify connector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyPullConfig {
    /// The shop: `acme` or `acme.myshopify.com`.
    #[serde(default)]
    pub shop: Option<String>,
    /// Instead of `shop`: the API base URL (its host must still be a Shopify host unless
    /// the hub allows custom hosts, which only tests do).
    #[serde(default)]
    pub base_url: Option<String>,
    /// REST Admin API version; default `2024-10`.
    #[serde(default)]
    pub api_version: Option<String>,
}

/// JSON Schema of the `pull` object.
pub fn schema() -> Value {
    pull_schema(serde_json::json!({
        "shop": {"type": "string", "description": "The shop, `acme` or `acme.myshopify.com`."},
        "base_url": {"type": "string", "format": "uri", "description": "API base URL instead of `shop`."},
        "api_version": {"type": "string", "default": "2024-10"},
    }))
}

/// Pulls customers and orders from one shop.
#[derive(Debug)]
pub struct ShopifyPull {
    base: String,
    version: String,
    token: String,
    settings: PullSettings,
}

/// Validate `config.pull` without credentials.
pub fn check(config: &Value) -> Result<(), ConfigError> {
    base_of(&parse_pull::<ShopifyPullConfig>(config, &FIELDS)?.0).map(|_| ())
}

fn base_of(c: &ShopifyPullConfig) -> Result<String, ConfigError> {
    match (&c.base_url, &c.shop) {
        (Some(url), _) => Ok(base_url("pull.base_url", url)?.0),
        (None, Some(shop)) => {
            let shop = shop.trim().trim_start_matches("https://").trim_end_matches('/').to_ascii_lowercase();
            let name = shop.strip_suffix(".myshopify.com").unwrap_or(&shop);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(invalid("pull.shop", "must be a shop name such as `acme` or `acme.myshopify.com`"));
            }
            Ok(format!("https://{name}.myshopify.com"))
        }
        (None, None) => Err(invalid("pull.shop", "required to pull (or `pull.base_url`)")),
    }
}

impl ShopifyPull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<ShopifyPullConfig>(config, &FIELDS)?;
        let base = base_of(&c)?;
        let version = c.api_version.unwrap_or_else(|| "2024-10".into());
        if !version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid("pull.api_version", "must look like `2024-10`"));
        }
        Ok(Self { base, version, token: pull_secret(secrets, PULL_SECRET)?, settings })
    }
}

impl Puller for ShopifyPull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Shopify
    }

    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }

    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 2.0, burst: 1 })
    }

    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&["myshopify.com"])
    }

    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let url = format!("{}/admin/api/{}/{}.json", self.base, self.version, pos.stream);
        let limit = pos.page_size.min(MAX_PAGE).to_string();
        let query: Vec<(&str, String)> = match pos.page.and_then(Value::as_str) {
            Some(page_info) => vec![("limit", limit), ("page_info", page_info.to_string())],
            None => {
                let mut q = vec![("limit", limit), ("order", "updated_at asc".to_string())];
                if pos.stream == "orders" {
                    q.push(("status", "any".into()));
                }
                if let Some(since) = pos.since {
                    q.push(("updated_at_min", since.updated_at.to_rfc3339()));
                }
                q
            }
        };
        Ok(HttpRequest::get(&url, &query).with_header("x-shopify-access-token", self.token.clone()))
    }

    fn parse(&self, pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let body: Value = from_json(&response.body)?;
        let items = body
            .get(pos.stream)
            .and_then(Value::as_array)
            .ok_or_else(|| PullError::Parse(format!("no `{}` array", pos.stream)))?;
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let record = match pos.stream {
                "customers" => Record::Customer(super::customer(item)?),
                _ => Record::Order(super::order(item)?),
            };
            let position = field(item, "updated_at")
                .as_deref()
                .and_then(rfc3339)
                .zip(field(item, "id"))
                .map(|(t, id)| Watermark::new(t, id));
            records.push(PulledRecord { record, position });
        }
        let next = response.header("link").and_then(|l| link_next_param(l, "page_info")).map(Value::String);
        Ok(PulledPage { records, next })
    }

    fn throttle(&self, response: &HttpResponse) -> Option<Duration> {
        let (used, size) = response.header("x-shopify-shop-api-call-limit")?.split_once('/')?;
        let (used, size): (f64, f64) = (used.trim().parse().ok()?, size.trim().parse().ok()?);
        // The bucket leaks size/20 calls per second (40 → 2/s, 80 → 4/s). Above 80 % full,
        // wait until it is back to 80 %.
        let leak = (size / 20.0).max(1.0);
        let over = used - size * 0.8;
        (over >= 0.0).then(|| Duration::from_secs_f64((over + 1.0) / leak))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    fn puller() -> ShopifyPull {
        ShopifyPull::new(&serde_json::json!({"pull": {"shop": "acme"}}), &secrets(&[("access_token", "shpat_x")]))
            .unwrap()
    }

    #[test]
    fn first_pages_filter_by_updated_at_and_later_pages_send_page_info_only() {
        let p = puller();
        let since = Watermark::new(rfc3339("2024-03-05T10:15:43-05:00").unwrap(), "7");
        let req =
            p.request(&PullPosition { stream: "customers", page: None, since: Some(&since), page_size: 500 }).unwrap();
        assert_eq!(
            req.url,
            "https://acme.myshopify.com/admin/api/2024-10/customers.json?limit=250&order=updated_at+asc&updated_at_min=2024-03-05T15%3A15%3A43%2B00%3A00"
        );
        assert!(req.headers.contains(&("x-shopify-access-token".into(), "shpat_x".into())));
        assert!(!format!("{req:?}").contains("shpat_x"), "Debug must not show credentials");
        let token = Value::String("abc".into());
        let req = p
            .request(&PullPosition { stream: "orders", page: Some(&token), since: Some(&since), page_size: 50 })
            .unwrap();
        assert_eq!(req.url, "https://acme.myshopify.com/admin/api/2024-10/orders.json?limit=50&page_info=abc");
    }

    #[test]
    fn a_page_gives_the_same_records_as_webhooks_and_the_next_page_info() {
        let p = puller();
        let customer: Value = serde_json::from_slice(include_bytes!("fixtures/customers_create.json")).unwrap();
        let body = serde_json::json!({"customers": [customer]});
        let resp = HttpResponse {
            status: 200,
            headers: vec![(
                "link".into(),
                "<https://acme.myshopify.com/admin/api/2024-10/customers.json?limit=1&page_info=n2>; rel=\"next\""
                    .into(),
            )],
            body: body.to_string().into_bytes(),
        };
        let pos = PullPosition { stream: "customers", page: None, since: None, page_size: 1 };
        let page = p.parse(&pos, &resp).unwrap();
        assert_eq!(page.next, Some(Value::String("n2".into())));
        let webhook =
            super::super::parse_topic("customers/create", include_bytes!("fixtures/customers_create.json"), None)
                .unwrap();
        assert_eq!(page.records[0].record, webhook[0]);
        assert_eq!(page.records[0].position.as_ref().unwrap().id, "7063498293520");
    }

    #[test]
    fn the_call_limit_header_pauses_near_a_full_bucket() {
        let p = puller();
        let r = |v: &str| HttpResponse {
            status: 200,
            headers: vec![("x-shopify-shop-api-call-limit".into(), v.into())],
            body: vec![],
        };
        assert_eq!(p.throttle(&r("10/40")), None);
        assert_eq!(p.throttle(&r("32/40")), Some(Duration::from_millis(500)));
        assert_eq!(p.throttle(&r("40/40")), Some(Duration::from_millis(4500)));
    }

    #[test]
    fn config_is_checked_and_the_token_required() {
        let err = ShopifyPull::new(&serde_json::json!({"pull": {"shop": "a/b"}}), &secrets(&[("access_token", "t")]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == "pull.shop"), "{err:?}");
        let err = ShopifyPull::new(
            &serde_json::json!({"pull": {"shop": "a", "color": 1}}),
            &secrets(&[("access_token", "t")]),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == "pull.color"), "{err:?}");
        let err = ShopifyPull::new(&serde_json::json!({"pull": {"shop": "a"}}), &secrets(&[])).unwrap_err();
        assert_eq!(err, ConfigError::MissingSecret("access_token".into()));
    }
}
