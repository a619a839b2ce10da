//! Re-fetching a Jotform submission: `GET {api_base}/submission/{submissionID}` with the
//! account's API key in the `APIKEY` header.
//!
//! The answer is `{"responseCode": 200, "content": {"id", "form_id", "status", "answers":
//! {"<qid>": {"name", "text", "type", "answer"}}}}`. The submission is applied only when
//! `content.id` is the delivered `submissionID`, `content.form_id` the delivered `formID`,
//! and its status is not `DELETED`. Questions without an `answer` (headings, buttons) are
//! skipped. API calls count against the account's daily API limit: one per submission.

use serde_json::Value;

use super::{answers, delivered_ids, Question};
use crate::payload::{clean, field};
use crate::pull::{base_url, invalid, pull_secret, Endpoint, HostPolicy, HttpRequest, HttpResponse, RateQuota};
use crate::{ConfigError, FormResponseRecord, Record, Refetch, RefetchError, Secrets, StoredEvent};

/// The secret holding the Jotform API key.
pub const API_KEY: &str = "api_key";
/// The API of US accounts.
pub const DEFAULT_BASE: &str = "https://api.jotform.com";
/// Jotform's API hosts: `api.`, `eu-api.` and `hipaa-api.jotform.com`, and Enterprise
/// accounts' `{subdomain}.jotform.com`. (An Enterprise server on a domain of its own needs
/// the hub's `sync.allow_custom_hosts`.)
const HOSTS: [&str; 1] = ["jotform.com"];

/// The configured API base URL, checked; the default when none is set.
pub(super) fn base(configured: Option<&str>) -> Result<String, ConfigError> {
    match configured {
        Some(u) => Ok(base_url("api_base", u)?.0),
        None => Ok(DEFAULT_BASE.into()),
    }
}

/// Jotform's API, as far as re-fetching a submission needs it.
pub struct JotformApi {
    base: String,
    key: String,
}

impl std::fmt::Debug for JotformApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JotformApi").field("base", &self.base).finish_non_exhaustive()
    }
}

impl JotformApi {
    pub(super) fn new(base: String, secrets: &Secrets) -> Result<Self, ConfigError> {
        let key = pull_secret(secrets, API_KEY)?;
        if !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(API_KEY, "must be a Jotform API key (letters and digits)"));
        }
        Ok(Self { base, key })
    }
}

impl Endpoint for JotformApi {
    fn hosts(&self) -> HostPolicy {
        HostPolicy::Platform(&HOSTS)
    }
}

impl Refetch for JotformApi {
    /// Jotform limits calls per day by plan, not per second; 10/s keeps a worker's whole
    /// lease (256 rows on PostgreSQL) re-fetched in about 25 s, inside the 60 s lease.
    fn quota(&self) -> RateQuota {
        RateQuota { per_second: 10.0, burst: 10 }
    }

    fn request(&self, event: &StoredEvent) -> Result<HttpRequest, RefetchError> {
        let (_, submission) = delivered_ids(event)?;
        let submission = submission.ok_or_else(|| RefetchError::Unaddressable("no submissionID".into()))?;
        if !submission.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RefetchError::Unaddressable("submissionID is not a Jotform submission id".into()));
        }
        Ok(HttpRequest::get(&format!("{}/submission/{submission}", self.base), &[]).with_header("APIKEY", &self.key))
    }

    fn parse(&self, event: &StoredEvent, response: &HttpResponse) -> Result<Vec<Record>, RefetchError> {
        let (form_id, submission) = delivered_ids(event)?;
        let body: Value = crate::payload::from_json(&response.body)?;
        match body.get("responseCode").and_then(Value::as_i64) {
            None | Some(200) => {}
            Some(404) => return Err(RefetchError::Unconfirmed("Jotform has no such submission".into())),
            Some(code) => {
                return Err(RefetchError::Parse(crate::ParseError::Invalid {
                    format: "Jotform API answer",
                    detail: format!("responseCode {code}"),
                }))
            }
        }
        let content =
            body.get("content").filter(|c| c.is_object()).ok_or(crate::ParseError::MissingField("content"))?;
        let id = field(content, "id").ok_or(crate::ParseError::MissingField("content.id"))?;
        if Some(&id) != submission.as_ref() {
            return Err(RefetchError::Unconfirmed("the API answered for another submission".into()));
        }
        let api_form = field(content, "form_id").and_then(|f| clean(&f));
        if form_id.is_some() && api_form != form_id {
            return Err(RefetchError::Unconfirmed("the submission belongs to another form".into()));
        }
        let form_id = api_form.ok_or(crate::ParseError::MissingField("content.form_id"))?;
        if field(content, "status").is_some_and(|s| s.eq_ignore_ascii_case("DELETED")) {
            return Err(RefetchError::Unconfirmed("the submission was deleted".into()));
        }
        let (person, answers) = answers(api_questions(content));
        Ok(vec![Record::FormResponse(FormResponseRecord {
            form_id,
            response_id: id,
            person,
            answers,
            submitted_at: Some(event.received_at),
        })])
    }
}

/// The answered questions of an API submission: `answers` keyed by question id.
fn api_questions(content: &Value) -> Vec<Question<'_>> {
    content
        .get("answers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(qid, q)| {
            Some(Question {
                number: qid.parse().ok()?,
                name: q.get("name").and_then(Value::as_str).unwrap_or(qid),
                label: q.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty()),
                control: q.get("type").and_then(Value::as_str),
                value: q.get("answer")?,
            })
        })
        .collect()
}
