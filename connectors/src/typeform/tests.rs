use super::*;
use crate::test_support::{accepted, at, rotated, secrets, verify_and_parse};
use crate::testing;
use serde_json::json;

const KEY: &str = "tf_secret_Wm3kPq8Zr";
const URL: &str = "https://hub.example.com/webhooks/typeform-1";
const RESPONSE: &[u8] = include_bytes!("fixtures/form_response.json");
/// `sha256=` + base64(HMAC-SHA256(KEY, RESPONSE)), computed with Python's hmac module.
const VECTOR: &str = "sha256=R2JLOZJ7DchivfaUJGG5krdtP7ocbC1QONzvhLlYyOU=";

fn connector(s: &Secrets) -> Typeform {
    Typeform::new(TypeformConfig::default(), s).unwrap()
}

fn now() -> DateTime<Utc> {
    at(1_718_007_700)
}

#[test]
fn independent_vector_verifies() {
    let req = SignedRequest::post(URL, RESPONSE).with_header("Typeform-Signature", VECTOR);
    let (id, ty) = accepted(connector(&secrets(&[(SECRET, KEY)])).verify(&req.request(), now()).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("01HXZ7Q4K9M2B8C6D5E3F1G0H7", "form_response"));
}

#[test]
fn prefix_is_required_and_signature_must_match() {
    let s = secrets(&[(SECRET, KEY)]);
    let no_prefix = SignedRequest::post(URL, RESPONSE).with_header(HEADER, VECTOR.trim_start_matches("sha256="));
    assert_eq!(connector(&s).verify(&no_prefix.request(), now()), Err(WebhookError::BadSignature));
    let mut tampered = SignedRequest::post(URL, RESPONSE).with_header(HEADER, VECTOR);
    tampered.body = String::from_utf8(RESPONSE.to_vec()).unwrap().replace("Priya", "Priye").into_bytes();
    assert_eq!(connector(&s).verify(&tampered.request(), now()), Err(WebhookError::BadSignature));
    let wrong = SignedRequest::post(URL, RESPONSE).with_header(HEADER, VECTOR);
    assert_eq!(
        connector(&secrets(&[(SECRET, "other")])).verify(&wrong.request(), now()),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        connector(&s).verify(&SignedRequest::post(URL, RESPONSE).request(), now()),
        Err(WebhookError::MissingSignature(HEADER))
    );
}

#[test]
fn previous_secret_verifies_during_rotation() {
    let req = SignedRequest::post(URL, RESPONSE).with_header(HEADER, VECTOR);
    assert!(connector(&rotated(&[(SECRET, "new")], &[(SECRET, KEY)])).verify(&req.request(), now()).is_ok());
}

#[test]
fn event_id_falls_back_to_the_response_token() {
    let s = secrets(&[(SECRET, KEY)]);
    let body = br#"{"event_type":"form_response","form_response":{"form_id":"f","token":"tok-1","answers":[]}}"#;
    let req = testing::sign(ConnectorKind::Typeform, &s, URL, body, now());
    assert_eq!(accepted(connector(&s).verify(&req.request(), now()).unwrap()).0, "tok-1");
}

#[test]
fn form_response_parses_answers_labels_and_person() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Typeform, &s, URL, RESPONSE, now());
    let records = verify_and_parse(&connector(&s), &req, now());
    let [Record::FormResponse(r)] = records.as_slice() else { panic!("{records:?}") };
    assert_eq!(r.form_id, "lT4Z3j");
    assert_eq!(r.response_id, "a3a12ec67a1365927098a606107fac15");
    assert_eq!(r.submitted_at, Some("2024-06-10T08:21:37Z".parse().unwrap()));
    assert_eq!(r.person.emails, vec!["priya.natarajan@example.co.uk"]);
    assert_eq!(r.person.phones, vec!["+447700900123", "+44 20 7946 0958"]);
    assert_eq!(r.person.given_name.as_deref(), Some("Priya"));
    assert_eq!(r.answers.len(), 9);
    let email = &r.answers[1];
    assert_eq!(
        (email.field_id.as_str(), email.field_ref.as_deref(), email.field_type.as_str()),
        ("JwWggjAKtOkA", Some("email"), "email")
    );
    assert_eq!(email.label.as_deref(), Some("Your email address, {{field:first_name}}?"));
    assert_eq!(r.answers[3].value, json!({"id": "c2", "label": "Lisbon", "ref": "lisbon"}));
    assert_eq!(r.answers[4].value["labels"], json!(["Payments", "Identity"]));
    assert_eq!(r.answers[5].value, json!(2));
    assert_eq!(r.answers[6].value, json!(true));
    assert_eq!(r.answers[7].value, json!("2024-07-01"));
}

#[test]
fn hidden_email_is_an_identity_and_other_events_are_ignored() {
    let c = connector(&secrets(&[(SECRET, KEY)]));
    let ev = |body: &str| StoredEvent {
        event_id: "e".into(),
        event_type: "form_response".into(),
        headers: vec![],
        query: vec![],
        body: body.as_bytes().to_vec(),
        received_at: now(),
    };
    let records = c
        .parse(&ev(r#"{"event_type":"form_response","form_response":{"form_id":"f","token":"t","hidden":{"Email":"h@example.com","name":"Ann Lee"},"answers":[]}}"#))
        .unwrap();
    let [Record::FormResponse(r)] = records.as_slice() else { panic!("{records:?}") };
    assert_eq!(r.person.emails, vec!["h@example.com"]);
    assert_eq!(r.person.full_name.as_deref(), Some("Ann Lee"));
    assert!(c.parse(&ev(r#"{"event_type":"form_response_partial","form_response":{}}"#)).unwrap().is_empty());
    assert!(matches!(
        c.parse(&ev(r#"{"event_type":"form_response","form_response":{"token":"t"}}"#)),
        Err(ParseError::MissingField("form_id"))
    ));
}
