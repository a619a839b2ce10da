//! Twilio pull: `GET /2010-04-01/Accounts/{AccountSid}/Messages.json`, `PageSize` ≤ 1000,
//! following `next_page_uri`. Incremental pulls ask for `DateSent>=` the watermark's day
//! (the filter has day granularity; the hub drops what it has seen by `(date_sent, sid)`).
//! Credentials: the account SID (`pull.account_sid`) and the auth token (the webhook
//! secret), HTTP Basic. 429 (code 20429) with `Retry-After` is honoured. Default 10/s.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::payload::{field, from_json};
use crate::pull::{
    base_url, invalid, parse_pull, pull_schema, pull_secret, HostPolicy, HttpRequest, HttpResponse, PullError,
    PullPosition, PullSettings, PulledPage, PulledRecord, Puller, RateQuota, Watermark,
};
use crate::{Channel, ConfigError, ConnectorKind, Direction, MessageRecord, Person, Record, Secrets};

const STREAMS: [&str; 1] = ["messages"];
const FIELDS: [&str; 2] = ["account_sid", "base_url"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioPullConfig {
    #[serde(default)]
    pub account_sid: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
}

pub fn schema() -> Value {
    pull_schema(serde_json::json!({
        "account_sid": {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$", "description": "Required to pull."},
        "base_url": {"type": "string", "format": "uri", "default": "https://api.twilio.com"},
    }))
}

fn parts(c: &TwilioPullConfig) -> Result<(String, String), ConfigError> {
    let sid = c.account_sid.as_deref().map(str::trim).ok_or_else(|| invalid("pull.account_sid", "required to pull"))?;
    if !(sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(invalid("pull.account_sid", "must be an account SID (AC + 32 hex digits)"));
    }
    let base = match &c.base_url {
        Some(u) => base_url("pull.base_url", u)?.0,
        None => "https://api.twilio.com".into(),
    };
    Ok((base, sid.to_string()))
}

pub fn check(config: &Value) -> Result<(), ConfigError> {
    parts(&parse_pull::<TwilioPullConfig>(config, &FIELDS)?.0).map(|_| ())
}

#[derive(Debug)]
pub struct TwilioPull {
    base: String,
    sid: String,
    auth: String,
    settings: PullSettings,
}

impl TwilioPull {
    pub fn new(config: &Value, secrets: &Secrets) -> Result<Self, ConfigError> {
        let (c, settings) = parse_pull::<TwilioPullConfig>(config, &FIELDS)?;
        let (base, sid) = parts(&c)?;
        let pair = format!("{sid}:{}", pull_secret(secrets, super::SECRET)?);
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        Ok(Self { base, sid, auth, settings })
    }
}

fn message(m: &Value) -> Option<MessageRecord> {
    let sid = field(m, "sid")?;
    let direction = if field(m, "direction").is_some_and(|d| d.starts_with("inbound")) {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    let other = match direction {
        Direction::Inbound => field(m, "from"),
        Direction::Outbound => field(m, "to"),
    }?;
    let (channel, number) = match other.strip_prefix("whatsapp:") {
        Some(n) => (Channel::Whatsapp, n.to_string()),
        None => (Channel::Sms, other),
    };
    let mut person = Person::default();
    person.phones.push(number);
    let sent_at = field(m, "date_sent")
        .or_else(|| field(m, "date_created"))
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    Some(MessageRecord {
        channel,
        direction,
        message_id: sid,
        person,
        text: field(m, "body"),
        message_type: "text".into(),
        sent_at,
    })
}

impl Puller for TwilioPull {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Twilio
    }
    fn streams(&self) -> &'static [&'static str] {
        &STREAMS
    }
    fn quota(&self) -> RateQuota {
        self.settings.quota(RateQuota { per_second: 10.0, burst: 1 })
    }
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&["api.twilio.com"])
    }
    fn settings(&self) -> &PullSettings {
        &self.settings
    }

    fn request(&self, pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
        let req = match pos.page.and_then(Value::as_str) {
            // next_page_uri is a path on the API host; anything else is refused.
            Some(uri) if uri.starts_with(&format!("/2010-04-01/Accounts/{}/", self.sid)) => {
                HttpRequest::get(&format!("{}{uri}", self.base), &[])
            }
            Some(_) => return Err(PullError::Parse("next_page_uri outside the account".into())),
            None => {
                let mut q = vec![("PageSize", pos.page_size.min(1000).to_string())];
                if let Some(since) = pos.since {
                    q.push(("DateSent>", since.updated_at.format("%Y-%m-%d").to_string()));
                }
                HttpRequest::get(&format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base, self.sid), &q)
            }
        };
        Ok(req.with_header("authorization", self.auth.clone()))
    }

    fn parse(&self, _pos: &PullPosition<'_>, response: &HttpResponse) -> Result<PulledPage, PullError> {
        let body: Value = from_json(&response.body)?;
        let items = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
        let records = items
            .iter()
            .filter_map(message)
            .map(|m| {
                let position = m.sent_at.map(|t| Watermark::new(t, m.message_id.clone()));
                PulledRecord { record: Record::Message(m), position }
            })
            .collect();
        Ok(PulledPage { records, next: field(&body, "next_page_uri").map(Value::String) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::secrets;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn messages_follow_next_page_uri_and_name_the_customer_side() {
        let p = TwilioPull::new(&serde_json::json!({"pull": {"account_sid": SID}}), &secrets(&[("auth_token", "tok")]))
            .unwrap();
        let body = serde_json::json!({"messages": [
            {"sid": "SM1", "direction": "inbound", "from": "+14155550100", "to": "+14155550199", "body": "hi", "date_sent": "Wed, 01 May 2024 10:00:00 +0000"},
            {"sid": "SM2", "direction": "outbound-api", "from": "whatsapp:+14155550199", "to": "whatsapp:+4915112345678", "body": "yo", "date_sent": "Wed, 01 May 2024 10:01:00 +0000"}
        ], "next_page_uri": format!("/2010-04-01/Accounts/{SID}/Messages.json?PageSize=2&Page=1&PageToken=PA2")});
        let resp = HttpResponse { status: 200, headers: vec![], body: body.to_string().into_bytes() };
        let pos = PullPosition { stream: "messages", page: None, since: None, page_size: 2 };
        let page = p.parse(&pos, &resp).unwrap();
        let Record::Message(m) = &page.records[1].record else { panic!() };
        assert_eq!(
            (m.channel, m.direction, m.person.phones[0].as_str()),
            (Channel::Whatsapp, Direction::Outbound, "+4915112345678")
        );
        let next = page.next.unwrap();
        let req = p.request(&PullPosition { page: Some(&next), ..pos }).unwrap();
        assert!(req.url.starts_with(
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json?"
        ));
        let evil = Value::String("https://evil.test/x".into());
        assert!(p.request(&PullPosition { page: Some(&evil), ..pos }).is_err());
    }
}
