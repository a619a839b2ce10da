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
//!
//! **Re-fetch** (`config.refetch = true`, secret `api_key`): since anyone holding the URL can
//! post, the hub can treat a delivery as a notice only and apply the submission as Jotform's
//! API returns it (`GET {api_base}/submission/{submissionID}`, see [`api`]). A submission
//! the API does not know, or that belongs to another form, is never applied. The API's
//! answer also carries each question's label and control type, so answers are typed from
//! the form instead of inferred.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{address, body_hash_id, clean, field, push_unique, text};
use crate::registry::object_schema;
use crate::signature::{ct_eq, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    form, Answer, ConfigError, Connector, ConnectorKind, FormResponseRecord, ParseError, Person, Record, Refetch,
    Reply, Secrets, StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

pub mod api;

/// The secret holding the URL token.
pub const SECRET: &str = "url_token";
const TOKEN_PARAM: &str = "token";

/// Secrets: the URL token, and the API key that re-fetching needs.
pub const SECRETS: [&str; 2] = [SECRET, api::API_KEY];

/// Jotform settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JotformConfig {
    /// Apply each submission as Jotform's API returns it, not as posted (needs the `api_key`
    /// secret). Default `false`.
    #[serde(default)]
    pub refetch: bool,
    /// The API to re-fetch from: `https://api.jotform.com` (default), `https://eu-api.jotform.com`
    /// (EU accounts), `https://hipaa-api.jotform.com` (HIPAA accounts) or an Enterprise
    /// server's `https://{subdomain}.jotform.com/API`.
    #[serde(default)]
    pub api_base: Option<String>,
}

/// JSON Schema of [`JotformConfig`].
pub fn config_schema() -> Value {
    object_schema(
        "Jotform",
        serde_json::json!({
            "refetch": {"type": "boolean", "default": false, "description": "Apply each submission as Jotform's API returns it (GET /submission/{id}), not as posted; needs the api_key secret. Costs one API call per submission."},
            "api_base": {"type": "string", "format": "uri", "default": api::DEFAULT_BASE, "description": "Jotform API base URL: https://api.jotform.com, https://eu-api.jotform.com, https://hipaa-api.jotform.com, or an Enterprise server's https://{subdomain}.jotform.com/API."},
        }),
        &[],
    )
}

/// A Jotform webhook URL.
#[derive(Debug)]
pub struct Jotform {
    tokens: KeyRing,
    api: Option<api::JotformApi>,
}

impl Jotform {
    pub fn new(config: JotformConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        let base = api::base(config.api_base.as_deref())?;
        let api = if config.refetch { Some(api::JotformApi::new(base, secrets)?) } else { None };
        Ok(Self { tokens: KeyRing::required(secrets, SECRET)?, api })
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
        let (person, answers) = answers(posted_questions(&raw));
        Ok(vec![Record::FormResponse(FormResponseRecord {
            form_id,
            response_id,
            person,
            answers,
            submitted_at: Some(event.received_at),
        })])
    }

    fn refetch(&self) -> Option<&dyn Refetch> {
        self.api.as_ref().map(|a| a as &dyn Refetch)
    }
}

/// `formID` and `submissionID` of a stored delivery, as far as they are present.
fn delivered_ids(event: &StoredEvent) -> Result<(Option<String>, Option<String>), ParseError> {
    let fields = form::parse(event.header("content-type"), &event.body)
        .map_err(|e| ParseError::Invalid { format: "form", detail: e.to_string() })?;
    Ok((form::get(&fields, "formID").and_then(clean), form::get(&fields, "submissionID").and_then(clean)))
}

/// One answered question.
struct Question<'a> {
    /// The question id (`qid`), which orders the form.
    number: u32,
    /// The question's unique name (`email`, `fullName3`).
    name: &'a str,
    /// The question text, when known (the API gives it; the webhook does not).
    label: Option<&'a str>,
    /// Jotform's control type (`control_email`), when known.
    control: Option<&'a str>,
    value: &'a Value,
}

/// The questions of a posted `rawRequest`, keyed `q<number>_<name>`.
fn posted_questions(raw: &Value) -> Vec<Question<'_>> {
    raw.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, value)| {
            let (number, name) = question_key(k)?;
            Some(Question { number, name, label: None, control: None, value })
        })
        .collect()
}

/// `q12_email` → (12, "email").
fn question_key(key: &str) -> Option<(u32, &str)> {
    let rest = key.strip_prefix('q')?;
    let (number, name) = rest.split_once('_')?;
    Some((number.parse().ok()?, name))
}

fn answers(mut questions: Vec<Question<'_>>) -> (Person, Vec<Answer>) {
    questions.sort_by_key(|q| q.number);

    let mut person = Person::default();
    let mut out = Vec::new();
    for Question { number, name, label, control, value } in questions {
        let lower = name.to_ascii_lowercase();
        let field_type = control.and_then(control_type).unwrap_or_else(|| infer_type(&lower, value));
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
            label: label.map(str::to_string),
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

/// The answer type of a Jotform control whose type says more than its value's shape.
fn control_type(control: &str) -> Option<&'static str> {
    Some(match control {
        "control_fullname" => "name",
        "control_email" => "email",
        "control_phone" => "phone",
        "control_address" => "address",
        "control_birthdate" | "control_datetime" => "date",
        "control_checkbox" => "list",
        _ => return None,
    })
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

/// A `{year, month, day}` answer; the month is a number or an English month name.
fn date(v: &Value) -> Option<NaiveDate> {
    let n = |k: &str| field(v, k).and_then(|s| s.parse::<u32>().ok());
    let month = n("month").or_else(|| field(v, "month").and_then(|m| month_number(&m)))?;
    NaiveDate::from_ymd_opt(i32::try_from(n("year")?).ok()?, month, n("day")?)
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let prefix = name.trim().get(..3)?.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == prefix).map(|i| i as u32 + 1)
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    SignedRequest::post(url, body).with_query(&[(TOKEN_PARAM, current(secrets, SECRET))])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
