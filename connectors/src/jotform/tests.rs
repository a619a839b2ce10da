use super::*;
use crate::test_support::{accepted, at, rotated, secrets, verify_and_parse};
use crate::testing;
use serde_json::json;

const TOKEN: &str = "jt_4mQ9sV2xL7pR1zK8";
const URL: &str = "https://hub.example.com/webhooks/jotform-1";
const SUBMISSION: &[u8] = include_bytes!("fixtures/submission_multipart.txt");

fn connector(s: &Secrets) -> Jotform {
    Jotform::new(JotformConfig::default(), s).unwrap()
}

fn now() -> DateTime<Utc> {
    at(1_718_101_260)
}

fn delivery(token: Option<&str>) -> SignedRequest {
    let r = SignedRequest::post(URL, SUBMISSION);
    match token {
        Some(t) => r.with_query(&[("token", t)]),
        None => r,
    }
}

#[test]
fn valid_token_accepts_with_submission_id() {
    let req = delivery(Some(TOKEN));
    assert!(req.header("content-type").unwrap().starts_with("multipart/form-data; boundary=------"));
    let (id, ty) = accepted(connector(&secrets(&[(SECRET, TOKEN)])).verify(&req.request(), now()).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("5934021877723456789", "submission"));
}

#[test]
fn sign_appends_the_token() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let req = testing::sign(ConnectorKind::Jotform, &s, URL, SUBMISSION, now());
    assert_eq!(req.url, format!("{URL}?token={TOKEN}"));
    assert!(connector(&s).verify(&req.request(), now()).is_ok());
}

#[test]
fn wrong_missing_and_rotated_tokens() {
    let s = secrets(&[(SECRET, TOKEN)]);
    assert_eq!(connector(&s).verify(&delivery(Some("jt_wrong")).request(), now()), Err(WebhookError::BadSignature));
    assert_eq!(connector(&s).verify(&delivery(Some(&TOKEN[..10])).request(), now()), Err(WebhookError::BadSignature));
    assert_eq!(connector(&s).verify(&delivery(None).request(), now()), Err(WebhookError::MissingSignature("token")));
    let r = rotated(&[(SECRET, "jt_new")], &[(SECRET, TOKEN)]);
    assert!(connector(&r).verify(&delivery(Some(TOKEN)).request(), now()).is_ok());
    assert!(connector(&r).verify(&delivery(Some("jt_new")).request(), now()).is_ok());
}

#[test]
fn submission_parses_answers_and_person() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let records = verify_and_parse(&connector(&s), &delivery(Some(TOKEN)), now());
    let [Record::FormResponse(r)] = records.as_slice() else { panic!("{records:?}") };
    assert_eq!(r.form_id, "241587392013052");
    assert_eq!(r.response_id, "5934021877723456789");
    assert_eq!(r.submitted_at, Some(now()));
    assert_eq!(r.person.given_name.as_deref(), Some("Kenji"));
    assert_eq!(r.person.family_name.as_deref(), Some("Tanaka"));
    assert_eq!(r.person.emails, vec!["kenji.tanaka@example.jp"]);
    assert_eq!(r.person.phones, vec!["(415) 555-0133"]);
    assert_eq!(r.person.birth_date, NaiveDate::from_ymd_opt(1988, 2, 29));
    let a = r.person.address.as_ref().unwrap();
    assert_eq!(
        (a.line1.as_deref(), a.postcode.as_deref(), a.country.as_deref()),
        (Some("500 Howard St"), Some("94105"), None)
    );
    let ids: Vec<&str> = r.answers.iter().map(|a| a.field_id.as_str()).collect();
    assert_eq!(ids, vec!["1", "3", "4", "5", "6", "7", "10"], "ordered by field number, blanks dropped");
    let types: Vec<&str> = r.answers.iter().map(|a| a.field_type.as_str()).collect();
    assert_eq!(types, vec!["name", "email", "phone", "address", "date", "text", "list"]);
    assert_eq!(r.answers[1].field_ref.as_deref(), Some("email"));
    assert_eq!(r.answers[6].value, json!(["Wholesale", "Events"]));
}

#[test]
fn urlencoded_posts_and_split_phone_fields_parse() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let raw = json!({"q2_fullName": {"first": "Ana", "last": "Lima"}, "q5_phone": {"area": "11", "phone": "91234-5678"}, "q6_yourEmail": "ana@example.com.br"});
    let body = serde_urlencoded::to_string([("formID", "9"), ("submissionID", "77"), ("rawRequest", &raw.to_string())])
        .unwrap();
    let req = testing::sign(ConnectorKind::Jotform, &s, URL, body.as_bytes(), now());
    let records = verify_and_parse(&connector(&s), &req, now());
    let [Record::FormResponse(r)] = records.as_slice() else { panic!("{records:?}") };
    assert_eq!(r.response_id, "77");
    assert_eq!(r.person.phones, vec!["11 91234-5678"]);
    assert_eq!(r.person.emails, vec!["ana@example.com.br"]);
}

#[test]
fn missing_submission_id_is_a_parse_error() {
    let s = secrets(&[(SECRET, TOKEN)]);
    let req = testing::sign(ConnectorKind::Jotform, &s, URL, b"formID=1", now());
    let (id, _) = accepted(connector(&s).verify(&req.request(), now()).unwrap());
    assert!(id.starts_with("sha256:"));
    assert!(matches!(
        connector(&s).parse(&req.stored(&id, "submission", now())),
        Err(ParseError::MissingField("submissionID"))
    ));
}

mod refetch {
    use super::*;
    use crate::pull::{HttpResponse, Method};
    use crate::RefetchError;

    const API: &[u8] = include_bytes!("fixtures/api_submission.json");

    fn refetching(config: Value) -> Jotform {
        let s = secrets(&[(SECRET, TOKEN), (api::API_KEY, "3f1c0a9be2d84c7f")]);
        Jotform::new(serde_json::from_value(config).unwrap(), &s).unwrap()
    }

    fn stored() -> StoredEvent {
        let req = delivery(Some(TOKEN));
        req.stored("5934021877723456789", "submission", now())
    }

    fn answered(body: &[u8]) -> HttpResponse {
        HttpResponse { status: 200, headers: vec![], body: body.to_vec() }
    }

    #[test]
    fn off_by_default_and_needs_the_api_key_when_on() {
        assert!(connector(&secrets(&[(SECRET, TOKEN)])).refetch().is_none());
        let on: JotformConfig = serde_json::from_value(json!({"refetch": true})).unwrap();
        assert!(matches!(
            Jotform::new(on.clone(), &secrets(&[(SECRET, TOKEN)])),
            Err(ConfigError::MissingSecret(s)) if s == "api_key"
        ));
        let bad_base: JotformConfig =
            serde_json::from_value(json!({"refetch": true, "api_base": "ftp://api.jotform.com"})).unwrap();
        assert!(matches!(
            Jotform::new(bad_base, &secrets(&[(SECRET, TOKEN), ("api_key", "k1")])),
            Err(ConfigError::Invalid { field, .. }) if field == "api_base"
        ));
    }

    #[test]
    fn asks_the_configured_api_for_the_delivered_submission() {
        let j = refetching(json!({"refetch": true, "api_base": "https://eu-api.jotform.com/"}));
        let r = j.refetch().unwrap();
        let req = r.request(&stored()).unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.url, "https://eu-api.jotform.com/submission/5934021877723456789");
        assert_eq!(req.headers, vec![("apikey".to_string(), "3f1c0a9be2d84c7f".to_string())]);
        assert!(!format!("{req:?}").contains("3f1c0a9be2d84c7f"), "the key never shows in Debug");
        for host in ["api.jotform.com", "eu-api.jotform.com", "hipaa-api.jotform.com", "acme.jotform.com"] {
            assert!(r.hosts().allows(host), "{host}");
        }
        assert!(!r.hosts().allows("jotform.com.evil.io") && !r.hosts().allows("evil-jotform.com"));

        let enterprise = refetching(json!({"refetch": true, "api_base": "https://acme.jotform.com/API"}));
        let req = enterprise.refetch().unwrap().request(&stored()).unwrap();
        assert_eq!(req.url, "https://acme.jotform.com/API/submission/5934021877723456789");

        let forged = SignedRequest::post(URL, b"formID=1&submissionID=../user").stored("x", "submission", now());
        assert!(matches!(r.request(&forged), Err(RefetchError::Unaddressable(_))));
    }

    #[test]
    fn the_api_answer_replaces_the_delivery_with_typed_labelled_answers() {
        let j = refetching(json!({"refetch": true}));
        let records = j.refetch().unwrap().parse(&stored(), &answered(API)).unwrap();
        let [Record::FormResponse(r)] = records.as_slice() else { panic!("{records:?}") };
        assert_eq!((r.form_id.as_str(), r.response_id.as_str()), ("241587392013052", "5934021877723456789"));
        assert_eq!(r.person.given_name.as_deref(), Some("Kenji"));
        assert_eq!(r.person.emails, vec!["kenji.tanaka@example.jp"], "typed by control_email, not by its name");
        assert_eq!(r.person.phones, vec!["(415) 555-0133"]);
        assert_eq!(r.person.birth_date, NaiveDate::from_ymd_opt(1988, 2, 29), "month given by name");
        let ids: Vec<&str> = r.answers.iter().map(|a| a.field_id.as_str()).collect();
        assert_eq!(ids, vec!["1", "3", "4", "5", "6", "7", "10"], "headings and buttons carry no answer");
        assert_eq!(r.answers[5].label.as_deref(), Some("How can we help?"));
        assert_eq!(r.answers[6].field_type, "list");
    }

    #[test]
    fn a_submission_jotform_does_not_confirm_is_refused() {
        let j = refetching(json!({"refetch": true}));
        let r = j.refetch().unwrap();
        let mut other_form: Value = serde_json::from_slice(API).unwrap();
        other_form["content"]["form_id"] = json!("111");
        let mut other_id: Value = serde_json::from_slice(API).unwrap();
        other_id["content"]["id"] = json!("5934021877723456780");
        let mut deleted: Value = serde_json::from_slice(API).unwrap();
        deleted["content"]["status"] = json!("DELETED");
        let missing = json!({"responseCode": 404, "message": "Submission not found", "content": ""});
        for body in [other_form, other_id, deleted, missing] {
            let got = r.parse(&stored(), &answered(body.to_string().as_bytes()));
            assert!(matches!(got, Err(RefetchError::Unconfirmed(_))), "{body}: {got:?}");
        }
        let got = r.parse(&stored(), &answered(b"<html>oops</html>"));
        assert!(matches!(got, Err(RefetchError::Parse(_))), "{got:?}");
    }
}
