//! Typeform pull: `GET /forms/{form_id}/responses` with `page_size` ≤ 1000.
//!
//! Pages chain with `after=<token of the last response>`; Typeform's cursor is inclusive,
//! so the response carrying the `after` token comes back first and is dropped here.
//! Incremental pulls start with `since` the watermark's `submitted_at` (responses never
//! change once submitted). A page shorter than `page_size` is the last. Credential: a
//! personal access token (`api_token`, Bearer). Quota: 2 requests/s.

use serde::Deserialize;
use serde_json::Value;

use crate::payload::{field, from_json, rfc3339};
use crate::pull::{
    base_url, invalid, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse, PullError,
    PullPosition, PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{ConfigError, ConnectorKind, Record, Secrets};

pub const PULL_SECRET: &str = "api_token";
const STREAMS: [&str; 1] = ["responses"];
const FIELDS: [&str; 2] = ["form_id", "base_url"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeformPullConfig {
    #[serde(default)]
    pub form_id: Option<String>,
    /// Default `https://api.typeform.com` (EU accounts: `https://api.eu.typeform.com`).
    #[serde(default)]
    pub base_url: Option<String>,
}

pub fn schema() -> Value {
    pull_schema(serde_json::json!({
        "form_id": {"type": "string", "description": "The form whose responses are pulled (required to pull)."},
        "base_url": {"type": "string", "format": "uri", "default": "https://api.typeform.com"},
    }))
}

fn parts(c: &TypeformPullConfig) -> Result<(String, String), ConfigError> {
    let form = c
        .form_id
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| invalid("pull.form_id", "required to pull"))?;
    if !form.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("pull.form_id", "must be a form id"));
    }
    let base = match &c.base_url {
        Some(u) => base_url("pull.base_url", u)?.0,
        None => "https://api.typeform.com".into(),
    };
    Ok((base, form.to_string()))
}

pub fn check(config: &Value) -> Result<(), ConfigError> {
    parts(&parse_pull::<TypeformPullConfig>(config, &FIELDS)?.0).map(|_| ())
}

#[derive(Debug)]
pub struct TypeformPull {
    base: String,
    form: String,
    token: String,
    settings: PullSettings,
}

impl TypeformPull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<TypeformPullConfig>(config, &FIELDS)?;
        let (base, form) = parts(&c)?;
        Ok(Self { base, form, token: pull_secret(secrets, PULL_SECRET)?, settings })
    }
}

impl Puller for TypeformPull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Typeform
    }
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }
    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 2.0, burst: 1 })
    }
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&["api.typeform.com", "api.eu.typeform.com"])
    }
    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let mut q = vec![("page_size", pos.page_size.min(1000).to_string())];
        match (pos.page.and_then(Value::as_str), pos.since) {
            (Some(after), _) => q.push(("after", after.to_string())),
            (None, Some(since)) => q.push(("since", since.updated_at.to_rfc3339())),
            (None, None) => {}
        }
        Ok(HttpRequest::get(&format!("{}/forms/{}/responses", self.base, self.form), &q)
            .with_header("authorization", format!("Bearer {}", self.token)))
    }

    fn parse(&self, pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let body: Value = from_json(&response.body)?;
        let items = body.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
        let after = pos.page.and_then(Value::as_str);
        let mut records = Vec::with_capacity(items.len());
        for mut item in items.iter().cloned() {
            let token = field(&item, "token").or_else(|| field(&item, "response_id"));
            if token.is_some() && token.as_deref() == after {
                continue; // the inclusive cursor repeats the last response of the previous page
            }
            if let Some(o) = item.as_object_mut() {
                o.insert("form_id".into(), Value::String(self.form.clone()));
            }
            let position = field(&item, "submitted_at")
                .as_deref()
                .and_then(rfc3339)
                .zip(token)
                .map(|(t, id)| Watermark::new(t, id));
            records.push(PulledRecord { record: Record::FormResponse(super::form_response(&item)?), position });
        }
        let full = items.len() as u32 >= pos.page_size.min(1000);
        let next = if full && !records.is_empty() {
            items.last().and_then(|i| field(i, "token").or_else(|| field(i, "response_id"))).map(Value::String)
        } else {
            None
        };
        Ok(PulledPage { records, next })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    fn response(token: &str) -> Value {
        serde_json::json!({"token": token, "submitted_at": "2024-05-01T10:00:00Z", "answers": [
            {"type": "email", "email": format!("{token}@acme.io"), "field": {"id": "f1", "type": "email"}}
        ]})
    }

    #[test]
    fn the_repeated_item_of_the_inclusive_cursor_is_dropped() {
        let p =
            TypeformPull::new(&serde_json::json!({"pull": {"form_id": "abc123"}}), &secrets(&[("api_token", "tfp_x")]))
                .unwrap();
        let after = Value::String("t2".into());
        let pos = PullPosition { stream: "responses", page: Some(&after), since: None, page_size: 3 };
        assert_eq!(
            p.request(&pos).unwrap().url,
            "https://api.typeform.com/forms/abc123/responses?page_size=3&after=t2"
        );
        let body = serde_json::json!({"items": [response("t2"), response("t3"), response("t4")]});
        let resp = HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
        let page = p.parse(&pos, &resp).unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.next, Some(Value::String("t4".into())));
        let Record::FormResponse(f) = &page.records[0].record else { panic!() };
        assert_eq!((f.form_id.as_str(), f.response_id.as_str()), ("abc123", "t3"));
        // A short page ends the stream.
        let body = serde_json::json!({"items": [response("t4"), response("t5")]});
        let resp = HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
        let t4 = Value::String("t4".into());
        let page = p.parse(&PullPosition { page: Some(&t4), ..pos }, &resp).unwrap();
        assert_eq!((page.records.len(), page.next), (1, None));
    }
}
