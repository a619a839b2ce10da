//! Slack pull: `users.list` with `cursor` → `response_metadata.next_cursor`, `limit` ≤ 200.
//! Slack has no "changed since" filter: every pull lists the workspace and the hub keeps
//! the users whose `updated` is after the watermark. Credential: a bot token (`bot_token`,
//! scopes `users:read` and `users:read.email`). Tier 2 (≈ 20 requests/minute): default
//! 0.33/s; 429 with `Retry-After` is honoured. An `ok: false` answer is a final error
//! naming Slack's error code.

use serde::Deserialize;
use serde_json::Value;

use crate::payload::{at, from_json, unix_secs};
use crate::pull::{
    base_url, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse, PullError, PullPosition,
    PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{ConfigError, ConnectorKind, Record, Secrets};

pub const PULL_SECRET: &str = "bot_token";
const STREAMS: [&str; 1] = ["users"];
const FIELDS: [&str; 1] = ["base_url"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackPullConfig {
    #[serde(default)]
    pub base_url: Option<String>,
}

pub fn schema() -> Value {
    pull_schema(
        serde_json::json!({"base_url": {"type": "string", "format": "uri", "default": "https://slack.com/api"}}),
    )
}

pub fn check(config: &Value) -> Result<(), ConfigError> {
    if let Some(u) = parse_pull::<SlackPullConfig>(config, &FIELDS)?.0.base_url {
        base_url("pull.base_url", &u)?;
    }
    Ok(())
}

#[derive(Debug)]
pub struct SlackPull {
    base: String,
    token: String,
    settings: PullSettings,
}

impl SlackPull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<SlackPullConfig>(config, &FIELDS)?;
        let base = match c.base_url {
            Some(u) => base_url("pull.base_url", &u)?.0,
            None => "https://slack.com/api".into(),
        };
        Ok(Self { base, token: pull_secret(secrets, PULL_SECRET)?, settings })
    }
}

impl Puller for SlackPull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Slack
    }
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }
    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 20.0 / 60.0, burst: 1 })
    }
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&["slack.com"])
    }
    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let mut q = vec![("limit", pos.page_size.min(200).to_string())];
        if let Some(c) = pos.page.and_then(Value::as_str) {
            q.push(("cursor", c.to_string()));
        }
        Ok(HttpRequest::get(&format!("{}/users.list", self.base), &q)
            .with_header("authorization", format!("Bearer {}", self.token)))
    }

    fn parse(&self, _pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let body: Value = from_json(&response.body)?;
        if body.get("ok").and_then(Value::as_bool) != Some(true) {
            let code = at(&body, "/error").unwrap_or_else(|| "unknown_error".into());
            return Err(PullError::Status { status: response.status, detail: code.chars().take(60).collect() });
        }
        let members = body.get("members").and_then(Value::as_array).cloned().unwrap_or_default();
        let records = members
            .iter()
            .filter_map(|u| {
                let c = super::user(u)?;
                let position = u
                    .get("updated")
                    .and_then(Value::as_i64)
                    .and_then(unix_secs)
                    .zip(c.person.external_id.clone())
                    .map(|(t, id)| Watermark::new(t, id));
                Some(PulledRecord { record: Record::Customer(c), position })
            })
            .collect();
        let next = at(&body, "/response_metadata/next_cursor").map(Value::String);
        Ok(PulledPage { records, next })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    #[test]
    fn users_list_pages_on_next_cursor_and_errors_name_slacks_code() {
        let p = SlackPull::new(&serde_json::json!(null), &secrets(&[("bot_token", "xoxb-1")])).unwrap();
        let body = serde_json::json!({"ok": true, "members": [
            {"id": "U1", "updated": 1714557600, "profile": {"email": "ann@acme.io", "real_name": "Ann"}},
            {"id": "B1", "is_bot": true, "updated": 1714557600, "profile": {}}
        ], "response_metadata": {"next_cursor": "dXNlcjpVMEc5V0ZYTlo="}});
        let resp = HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
        let pos = PullPosition { stream: "users", page: None, since: None, page_size: 500 };
        let page = p.parse(&pos, &resp).unwrap();
        assert_eq!(page.records.len(), 1, "bots are not customers");
        assert_eq!(page.next, Some(Value::String("dXNlcjpVMEc5V0ZYTlo=".into())));
        let next = page.next.unwrap();
        assert_eq!(
            p.request(&PullPosition { page: Some(&next), ..pos }).unwrap().url,
            "https://slack.com/api/users.list?limit=200&cursor=dXNlcjpVMEc5V0ZYTlo%3D"
        );
        let bad =
            HttpResponse { status: 200, headers: vec![], body: br#"{"ok":false,"error":"invalid_auth"}"#.to_vec() };
        assert!(matches!(p.parse(&pos, &bad), Err(PullError::Status { detail, .. }) if detail == "invalid_auth"));
    }
}
