//! Typeform webhooks.
//!
//! Signature: `Typeform-Signature: sha256=<base64>` = HMAC-SHA256 of the raw body keyed with
//! the webhook's secret. Nothing time-related is signed.
//!
//! Event id: `event_id`, else the response `token` (one per submission).
//!
//! A `form_response` becomes a [`FormResponseRecord`]: every answer with its field id, ref,
//! answer type and the question title from `definition.fields`. The person is taken from
//! answers of type `email` and `phone_number`, from hidden fields `email`/`phone`, and names
//! from answers or hidden fields whose ref is `first_name`/`last_name`/`name` (Typeform has
//! no person object).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::payload::{body_hash_id, field, from_json, push_unique, rfc3339, text};
use crate::registry::object_schema;
use crate::signature::{encode_base64, hmac, verify_text, Algorithm, Encoding, KeyRing};
use crate::testing::{current, SignedRequest};
use crate::{
    Answer, ConfigError, Connector, ConnectorKind, FormResponseRecord, ParseError, Person, Record, Reply, Secrets,
    StoredEvent, WebhookError, WebhookOutcome, WebhookRequest,
};

/// The secret holding the webhook's secret.
pub const SECRET: &str = "secret";
const HEADER: &str = "typeform-signature";

/// Typeform needs no settings beyond its secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeformConfig {}

/// JSON Schema of [`TypeformConfig`].
pub fn config_schema() -> Value {
    object_schema("Typeform", serde_json::json!({}), &[])
}

/// A Typeform webhook.
#[derive(Debug)]
pub struct Typeform {
    keys: KeyRing,
}

impl Typeform {
    pub fn new(_config: TypeformConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        Ok(Self { keys: KeyRing::required(secrets, SECRET)? })
    }
}

impl Connector for Typeform {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Typeform
    }

    fn verify(&self, req: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<WebhookOutcome, WebhookError> {
        req.require_method("POST")?;
        let signature = req.header(HEADER).ok_or(WebhookError::MissingSignature(HEADER))?;
        verify_text(&self.keys, Algorithm::Sha256, Encoding::Base64, "sha256=", signature, &[req.body])?;
        let envelope: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        let event_id = field(&envelope, "event_id")
            .or_else(|| envelope.pointer("/form_response/token").and_then(|t| text(Some(t))))
            .unwrap_or_else(|| body_hash_id(req.body));
        Ok(WebhookOutcome::Accept {
            event_id,
            event_type: field(&envelope, "event_type").unwrap_or_else(|| "unknown".into()),
            ack: Reply::ok(),
        })
    }

    fn parse(&self, event: &StoredEvent) -> Result<Vec<Record>, ParseError> {
        let envelope: Value = from_json(&event.body)?;
        if field(&envelope, "event_type").as_deref() != Some("form_response") {
            return Ok(Vec::new());
        }
        let response = envelope.get("form_response").ok_or(ParseError::MissingField("form_response"))?;
        Ok(vec![Record::FormResponse(form_response(response)?)])
    }
}

const GIVEN_NAME_REFS: [&str; 3] = ["first_name", "firstname", "given_name"];
const FAMILY_NAME_REFS: [&str; 4] = ["last_name", "lastname", "family_name", "surname"];
const FULL_NAME_REFS: [&str; 2] = ["name", "full_name"];

fn form_response(r: &Value) -> Result<FormResponseRecord, ParseError> {
    let response_id = field(r, "token").or_else(|| field(r, "response_id")).ok_or(ParseError::MissingField("token"))?;
    let form_id = field(r, "form_id").ok_or(ParseError::MissingField("form_id"))?;
    let fields = r.pointer("/definition/fields").and_then(Value::as_array).cloned().unwrap_or_default();
    let label_of = |id: &str| {
        fields.iter().find(|f| f.get("id").and_then(Value::as_str) == Some(id)).and_then(|f| field(f, "title"))
    };

    let mut person = Person::default();
    let mut answers = Vec::new();
    for a in r.get("answers").and_then(Value::as_array).into_iter().flatten() {
        let answer_type = field(a, "type").unwrap_or_default();
        let value = a.get(&answer_type).cloned().unwrap_or(Value::Null);
        let field_id = a.pointer("/field/id").and_then(|v| text(Some(v))).unwrap_or_default();
        let field_ref = a.pointer("/field/ref").and_then(|v| text(Some(v)));
        match answer_type.as_str() {
            "email" => push_unique(&mut person.emails, text(Some(&value))),
            "phone_number" => push_unique(&mut person.phones, text(Some(&value))),
            "text" => name_from_ref(&mut person, field_ref.as_deref(), text(Some(&value))),
            _ => {}
        }
        answers.push(Answer { label: label_of(&field_id), field_id, field_ref, field_type: answer_type, value });
    }
    if let Some(hidden) = r.get("hidden").and_then(Value::as_object) {
        for (key, value) in hidden {
            match key.to_ascii_lowercase().as_str() {
                "email" => push_unique(&mut person.emails, text(Some(value))),
                "phone" | "phone_number" => push_unique(&mut person.phones, text(Some(value))),
                other => name_from_ref(&mut person, Some(other), text(Some(value))),
            }
        }
    }
    Ok(FormResponseRecord {
        form_id,
        response_id,
        person,
        answers,
        submitted_at: field(r, "submitted_at").as_deref().and_then(rfc3339),
    })
}

/// Take a name part from a field whose ref says what it is.
fn name_from_ref(person: &mut Person, field_ref: Option<&str>, value: Option<String>) {
    let Some(r) = field_ref.map(str::to_ascii_lowercase) else { return };
    let slot = if GIVEN_NAME_REFS.contains(&r.as_str()) {
        &mut person.given_name
    } else if FAMILY_NAME_REFS.contains(&r.as_str()) {
        &mut person.family_name
    } else if FULL_NAME_REFS.contains(&r.as_str()) {
        &mut person.full_name
    } else {
        return;
    };
    if slot.is_none() {
        *slot = value;
    }
}

pub(crate) fn sign(secrets: &Secrets, url: &str, body: &[u8], _now: DateTime<Utc>) -> SignedRequest {
    let mac = hmac(Algorithm::Sha256, current(secrets, SECRET).as_bytes(), &[body]);
    SignedRequest::post(url, body).with_header(HEADER, format!("sha256={}", encode_base64(&mac)))
}

pub mod pull;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
