//! Jotform webhooks.
//!
//! Jotform signs nothing. The webhook URL registered with Jotform carries a secret
//! `token` query parameter (`…/webhooks/{id}?token=<url_token>`), compared in constant time
//! with the stored `url_token`. Keep the URL out of logs.
//!
//! Jotform posts `multipart/form-data` (some setups urlencoded) with `formID`,
//! `submissionID`, `pretty` and `rawRequest`, a JSON string of the answers keyed
//! `q<field number>_<field name>` (`q3_email`, `q1_name: {first, last}`,
//! `q4_phoneNumber: {full}` or `{area, phone}`, `q5_address: {addr_line1, …}`).
//!
//! Event id: `submissionID`. Answer types are inferred from the value's shape and the field
//! name (Jotform does not send them): `name`, `email`, `phone`, `address`, `date`, `text`,
//! `list`, `object`. The submission time is not in the payload: the hub's receipt time is
//! used.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{address, body_hash_id, clean, field, push_unique, text};
use crate::registry::object_schema;
use crate::signature::{ct_eq, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    form, Answer, ConfigError, Connector, ConnectorKind, FormResponseRecord, ParseError, Person, Record, Reply,
    Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the URL token.
pub const SECRET: &str = "url_token";
const TOKEN_PARAM: &str = "token";

/// Jotform needs no settings beyond its URL token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JotformConfig {}

/// JSON Schema of [`JotformConfig`].
pub fn config_schema() -> Value {
    object_schema("Jotform", serde_json::json!({}), &[])
}

/// A Jotform webhook URL.
#[derive(Debug)]
pub struct Jotform {
    tokens: KeyRing,
}

impl Jotform {
    pub fn new(_config: JotformConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { tokens: KeyRing::required(secrets, SECRET)? })
    }
}

impl Connector for Jotform {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Jotform
    }

    fn verify(&self, req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let token = req.query_param(TOKEN_PARAM).ok_or(WebhookError::MissingSignature(TOKEN_PARAM))?;
        if !self.tokens.any(|t| ct_eq(t, token.as_bytes())) {
            return Err(WebhookError::BadSignature);
        }
        let fields = form::parse(req.header("content-type"), req.body).unwrap_or_default();
        let event_id = form::get(&fields, "submissionID").and_then(clean).unwrap_or_else(|| body_hash_id(req.body));
        Ok(WebhookOutcome::Accept { event_id, event_type: "submission".into(), ack: Reply::ok() })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let fields = form::parse(event.header("content-type"), &event.body)
            .map_err(|e| ParseError::Invalid { format: "form", detail: e.to_string() })?;
        let form_id = form::get(&fields, "formID").and_then(clean).ok_or(ParseError::MissingField("formID"))?;
        let response_id =
            form::get(&fields, "submissionID").and_then(clean).ok_or(ParseError::MissingField("submissionID"))?;
        let raw: Value = match form::get(&fields, "rawRequest") {
            Some(r) => crate::payload::from_json(r.as_bytes())?,
            None => Value::Null,
        };
        let (person, answers) = answers(&raw);
        Ok(vec![Record::FormResponse(FormResponseRecord {
            form_id,
            response_id,
            person,
            answers,
            submitted_at: Some(event.received_at),
        })])
    }
}

/// `q12_email` → (12, "email").
fn question_key(key: &str) -> Option<(u32, &str)> {
    let rest = key.strip_prefix('q')?;
    let (number, name) = rest.split_once('_')?;
    Some((number.parse().ok()?, name))
}

fn answers(raw: &Value) -> (Person, Vec<Answer>) {
    let mut questions: Vec<(u32, &str, &Value)> = raw
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| question_key(k).map(|(n, name)| (n, name, v)))
        .collect();
    questions.sort_by_key(|(n, _, _)| *n);

    let mut person = Person::default();
    let mut out = Vec::new();
    for (number, name, value) in questions {
        let lower = name.to_ascii_lowercase();
        let field_type = infer_type(&lower, value);
        match field_type {
            "name" => {
                person.given_name = person.given_name.take().or_else(|| field(value, "first"));
                person.family_name = person.family_name.take().or_else(|| field(value, "last"));
            }
            "email" => push_unique(&mut person.emails, text(Some(value))),
            "phone" => push_unique(&mut person.phones, phone(value)),
            "address" if person.address.is_none() => {
                person.address = address(
                    field(value, "addr_line1"),
                    field(value, "addr_line2"),
                    field(value, "city"),
                    field(value, "state"),
                    field(value, "postal"),
                    field(value, "country"),
                );
            }
            "date" if lower.contains("birth") || lower.contains("dob") => {
                person.birth_date = person.birth_date.or_else(|| date(value));
            }
            _ => {}
        }
        if is_blank(value) {
            continue;
        }
        out.push(Answer {
            field_id: number.to_string(),
            field_ref: Some(name.to_string()),
            label: None,
            field_type: field_type.to_string(),
            value: value.clone(),
        });
    }
    (person, out)
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_blank),
        _ => false,
    }
}

fn infer_type(name: &str, value: &Value) -> &'static str {
    match value {
        Value::Object(o) if o.contains_key("first") || o.contains_key("last") => "name",
        Value::Object(o) if o.contains_key("addr_line1") || o.contains_key("postal") => "address",
        Value::Object(o) if o.contains_key("year") && o.contains_key("month") => "date",
        Value::Object(o) if name.contains("phone") || o.contains_key("full") || o.contains_key("area") => "phone",
        Value::String(s) if name.contains("email") || (s.contains('@') && !s.contains(' ')) => "email",
        Value::String(_) if name.contains("phone") || name.contains("mobile") => "phone",
        Value::String(_) | Value::Number(_) | Value::Bool(_) => "text",
        Value::Array(_) => "list",
        _ => "object",
    }
}

/// A phone answer: a string, `{full}`, or `{country, area, phone}` parts.
fn phone(v: &Value) -> Option<String> {
    text(Some(v)).or_else(|| field(v, "full")).or_else(|| {
        let parts: Vec<String> = ["country", "area", "phone"].iter().filter_map(|k| field(v, k)).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

fn date(v: &Value) -> Option<NaiveDate> {
    let n = |k: &str| field(v, k).and_then(|s| s.parse::<u32>().ok());
    NaiveDate::from_ymd_opt(i32::try_from(n("year")?).ok()?, n("month")?, n("day")?)
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    SignedRequest::post(url, body).with_query(&[(TOKEN_PARAM, current(secrets, SECRET))])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
