//! HubSpot pull: CRM contacts.
//!
//! Backfill: `GET /crm/v3/objects/contacts` (`limit` ≤ 100, `after` → `paging.next.after`).
//! Incremental: `POST /crm/v3/objects/contacts/search` with `lastmodifieddate >=` the
//! watermark, sorted ascending (the search API caps a query at 10,000 results; the next
//! incremental run continues from the new watermark). Credential: a private-app access
//! token (`access_token`, Bearer). Quota: 100 requests / 10 s per app and portal, search
//! 5/s: default 4/s; `X-HubSpot-RateLimit-Remaining` (and `-Secondly-Remaining`) pause the
//! client before the window runs dry.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::payload::{at, field, from_json, rfc3339};
use crate::pull::{
    base_url, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse, PullError, PullPosition,
    PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{ConfigError, ConnectorKind, Record, Secrets};

pub const PULL_SECRET: &str = "access_token";
const STREAMS: [&str; 1] = ["contacts"];
const FIELDS: [&str; 1] = ["base_url"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotPullConfig {
    #[serde(default)]
    pub base_url: Option<String>,
}

pub fn schema() -> Value {
    pull_schema(json!({"base_url": {"type": "string", "format": "uri", "default": "https://api.hubapi.com"}}))
}

pub fn check(config: &Value) -> Result<(), ConfigError> {
    if let Some(u) = parse_pull::<HubspotPullConfig>(config, &FIELDS)?.0.base_url {
        base_url("pull.base_url", &u)?;
    }
    Ok(())
}

#[derive(Debug)]
pub struct HubspotPull {
    base: String,
    token: String,
    settings: PullSettings,
}

impl HubspotPull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<HubspotPullConfig>(config, &FIELDS)?;
        let base = match c.base_url {
            Some(u) => base_url("pull.base_url", &u)?.0,
            None => "https://api.hubapi.com".into(),
        };
        Ok(Self { base, token: pull_secret(secrets, PULL_SECRET)?, settings })
    }
}

impl Puller for HubspotPull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Hubspot
    }
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }
    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 4.0, burst: 1 })
    }
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&["api.hubapi.com"])
    }
    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let limit = pos.page_size.min(100);
        let after = pos.page.and_then(Value::as_str);
        let req = match pos.since {
            Some(since) => {
                let mut body = json!({
                    "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                        "value": since.updated_at.timestamp_millis().to_string()}]}],
                    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": super::CONTACT_PROPERTIES,
                    "limit": limit,
                });
                if let Some(a) = after {
                    body["after"] = json!(a);
                }
                HttpRequest::post_json(&format!("{}/crm/v3/objects/contacts/search", self.base), &body)
            }
            None => {
                let mut q = vec![("limit", limit.to_string()), ("properties", super::CONTACT_PROPERTIES.join(","))];
                if let Some(a) = after {
                    q.push(("after", a.to_string()));
                }
                HttpRequest::get(&format!("{}/crm/v3/objects/contacts", self.base), &q)
            }
        };
        Ok(req.with_header("authorization", format!("Bearer {}", self.token)))
    }

    fn parse(&self, _pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let body: Value = from_json(&response.body)?;
        let items = body.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            let c = super::contact(item)?;
            let position = field(item, "updatedAt")
                .as_deref()
                .and_then(rfc3339)
                .or(c.updated_at)
                .zip(field(item, "id"))
                .map(|(t, id)| Watermark::new(t, id));
            records.push(PulledRecord { record: Record::Customer(c), position });
        }
        Ok(PulledPage { records, next: at(&body, "/paging/next/after").map(Value::String) })
    }

    fn throttle(&self, response: &HttpResponse) -> Option<Duration> {
        let num = |h: &str| response.header(h).and_then(|v| v.trim().parse::<u64>().ok());
        if num("x-hubspot-ratelimit-secondly-remaining") == Some(0) {
            return Some(Duration::from_secs(1));
        }
        match num("x-hubspot-ratelimit-remaining") {
            Some(r) if r <= 1 => {
                Some(Duration::from_millis(num("x-hubspot-ratelimit-interval-milliseconds").unwrap_or(10_000)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    #[test]
    fn lists_for_backfill_searches_for_incremental_and_reads_rate_headers() {
        let p = HubspotPull::new(&json!({"pull": {}}), &secrets(&[("access_token", "pat-1")])).unwrap();
        let pos = PullPosition { stream: "contacts", page: None, since: None, page_size: 500 };
        let req = p.request(&pos).unwrap();
        assert!(req.url.starts_with("https://api.hubapi.com/crm/v3/objects/contacts?limit=100&properties=email%2C"));
        let since = Watermark::new(rfc3339("2024-05-01T10:00:00Z").unwrap(), "5");
        let req = p.request(&PullPosition { since: Some(&since), ..pos }).unwrap();
        let body: Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["filterGroups"][0]["filters"][0]["value"], "1714557600000");
        let page_body = json!({"results": [{"id": "51", "updatedAt": "2024-05-01T10:00:01Z",
            "properties": {"email": "kim@acme-mail.io", "firstname": "Kim", "lastmodifieddate": "2024-05-01T10:00:01Z"}}],
            "paging": {"next": {"after": "52"}}});
        let resp = HttpResponse { status: 200, headers: vec![], body: page_body.to_string().into_bytes() };
        let page = p.parse(&pos, &resp).unwrap();
        assert_eq!(page.next, Some(Value::String("52".into())));
        assert_eq!(page.records[0].position.as_ref().unwrap().id, "51");
        let limited = HttpResponse {
            status: 200,
            headers: vec![
                ("x-hubspot-ratelimit-remaining".into(), "1".into()),
                ("x-hubspot-ratelimit-interval-milliseconds".into(), "10000".into()),
            ],
            body: vec![],
        };
        assert_eq!(p.throttle(&limited), Some(Duration::from_secs(10)));
    }
}
