use super::*;
use crate::test_support::{accepted, at, only_customer, rotated, secrets, verify_and_parse};
use crate::testing;

const URL: &str = "https://hub.example.com/webhooks/std-1";

// The test vector of PLATFORMS.md (also the reference SDKs' own test vector).
const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const VECTOR_TS: i64 = 1_649_367_553;
const VECTOR_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const VECTOR_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

const SECRET_2: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CONTACT: &[u8] = include_bytes!("fixtures/contact_created.json");
/// Produced by the official `standardwebhooks` Python SDK (`Webhook.sign`).
const SDK_CONTACT_SIG: &str = "v1,otzcJPTRVHWo77qT3pJN7HE7spw0npZqHE6WoXp/mBs=";
const CONTACT_ID: &str = "msg_2hX9Qb7LmN4pR8sTzK1";
const CONTACT_TS: i64 = 1_718_357_400;

fn connector(s: &Secrets) -> StandardWebhooks {
    StandardWebhooks::new(StandardWebhooksConfig::default(), s).unwrap()
}

fn delivery(prefix: &str, id: &str, ts: i64, sig: &str, body: &[u8]) -> SignedRequest {
    SignedRequest::post(URL, body)
        .with_header(&format!("{prefix}-id"), id)
        .with_header(&format!("{prefix}-timestamp"), ts.to_string())
        .with_header(&format!("{prefix}-signature"), sig)
}

#[test]
fn platforms_md_test_vector_is_reproduced_and_verifies() {
    let key = key_of(VECTOR_SECRET).unwrap();
    let mac = hmac(Algorithm::Sha256, &key, &[VECTOR_ID.as_bytes(), b".", b"1649367553", b".", VECTOR_BODY]);
    assert_eq!(format!("v1,{}", encode_base64(&mac)), VECTOR_SIG);

    let s = secrets(&[(SECRET, VECTOR_SECRET)]);
    let req = delivery("webhook", VECTOR_ID, VECTOR_TS, VECTOR_SIG, VECTOR_BODY);
    let (id, _) = accepted(connector(&s).verify(&req.request(), at(VECTOR_TS)).unwrap());
    assert_eq!(id, VECTOR_ID);

    let signed = testing::sign(ConnectorKind::StandardWebhooks, &s, URL, VECTOR_BODY, at(VECTOR_TS));
    assert_eq!(signed.header("webhook-timestamp"), Some("1649367553"));
    assert!(connector(&s).verify(&signed.request(), at(VECTOR_TS)).is_ok());
}

#[test]
fn svix_headers_and_one_valid_entry_among_several() {
    let s = secrets(&[(SECRET, SECRET_2)]);
    let many = format!("v1,Zm9vYmFy v1a,c2lnbmVk {SDK_CONTACT_SIG} v2,{}", &SDK_CONTACT_SIG[3..]);
    let req = delivery("svix", CONTACT_ID, CONTACT_TS, &many, CONTACT);
    let (id, ty) = accepted(connector(&s).verify(&req.request(), at(CONTACT_TS + 10)).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), (CONTACT_ID, "contact.created"));
    let none_valid =
        delivery("webhook", CONTACT_ID, CONTACT_TS, &format!("v1,Zm9vYmFy v2,{}", &SDK_CONTACT_SIG[3..]), CONTACT);
    assert_eq!(connector(&s).verify(&none_valid.request(), at(CONTACT_TS)), Err(WebhookError::BadSignature));
}

#[test]
fn rotation_tamper_wrong_secret_stale_and_missing() {
    let s = secrets(&[(SECRET, SECRET_2)]);
    let req = delivery("webhook", CONTACT_ID, CONTACT_TS, SDK_CONTACT_SIG, CONTACT);
    let r = rotated(&[(SECRET, VECTOR_SECRET)], &[(SECRET, SECRET_2)]);
    assert!(connector(&r).verify(&req.request(), at(CONTACT_TS)).is_ok());
    assert_eq!(
        connector(&secrets(&[(SECRET, VECTOR_SECRET)])).verify(&req.request(), at(CONTACT_TS)),
        Err(WebhookError::BadSignature)
    );
    let other_id = delivery("webhook", "msg_other", CONTACT_TS, SDK_CONTACT_SIG, CONTACT);
    assert_eq!(connector(&s).verify(&other_id.request(), at(CONTACT_TS)), Err(WebhookError::BadSignature));
    let mut tampered = req.clone();
    tampered.body = String::from_utf8(CONTACT.to_vec()).unwrap().replace("Olivia", "Olivio").into_bytes();
    assert_eq!(connector(&s).verify(&tampered.request(), at(CONTACT_TS)), Err(WebhookError::BadSignature));
    assert_eq!(
        connector(&s).verify(&req.request(), at(CONTACT_TS + 301)),
        Err(WebhookError::StaleTimestamp { tolerance_secs: 300 })
    );
    assert_eq!(
        connector(&s).verify(&req.request(), at(CONTACT_TS - 301)),
        Err(WebhookError::StaleTimestamp { tolerance_secs: 300 })
    );
    let mut no_sig = req.clone();
    no_sig.headers.retain(|(k, _)| k != "webhook-signature");
    assert_eq!(
        connector(&s).verify(&no_sig.request(), at(CONTACT_TS)),
        Err(WebhookError::MissingSignature("webhook-signature"))
    );
    let mut no_id = req.clone();
    no_id.headers.retain(|(k, _)| k != "webhook-id");
    assert_eq!(
        connector(&s).verify(&no_id.request(), at(CONTACT_TS)),
        Err(WebhookError::MissingSignature("webhook-id"))
    );
}

#[test]
fn secrets_must_be_base64() {
    let err = StandardWebhooks::new(StandardWebhooksConfig::default(), &secrets(&[(SECRET, "whsec_***")])).unwrap_err();
    assert_eq!(err, ConfigError::Invalid { field: SECRET.into(), reason: "must be whsec_ followed by base64".into() });
    assert!(!err.to_string().contains("***"));
    // The prefix is optional, as in the reference SDKs.
    assert_eq!(key_of("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap(), key_of(VECTOR_SECRET).unwrap());
}

#[test]
fn contact_payload_parses_into_a_customer() {
    let s = secrets(&[(SECRET, SECRET_2)]);
    let req = delivery("webhook", CONTACT_ID, CONTACT_TS, SDK_CONTACT_SIG, CONTACT);
    let c = only_customer(verify_and_parse(&connector(&s), &req, at(CONTACT_TS)));
    assert_eq!(c.person.external_id.as_deref(), Some("ct_2hX9Qb7LmN4pR8sT"));
    assert_eq!(c.person.emails, vec!["olivia.chen@example.com"]);
    assert_eq!(c.person.phones, vec!["+61 2 9374 4000"]);
    assert_eq!((c.person.given_name.as_deref(), c.person.family_name.as_deref()), (Some("Olivia"), Some("Chen")));
    assert_eq!(c.updated_at, Some("2024-06-14T09:29:59.001Z".parse().unwrap()));
}

#[test]
fn nested_customer_is_found_and_non_person_ids_are_not_taken() {
    let s = secrets(&[(SECRET, SECRET_2)]);
    let now = at(CONTACT_TS);
    let req =
        testing::sign(ConnectorKind::StandardWebhooks, &s, URL, include_bytes!("fixtures/invoice_paid.json"), now);
    let c = only_customer(verify_and_parse(&connector(&s), &req, now));
    assert_eq!(c.person.external_id.as_deref(), Some("cus_88Tq1"));
    assert_eq!(c.person.full_name.as_deref(), Some("Olivia Chen"));
    assert_eq!(c.updated_at, Some("2024-06-14T10:02:11.500Z".parse().unwrap()));

    let order =
        br#"{"type":"order.paid","timestamp":"2024-06-14T10:02:11Z","data":{"id":"ord_1","email":"a@example.com"}}"#;
    let req = testing::sign(ConnectorKind::StandardWebhooks, &s, URL, order, now);
    let c = only_customer(verify_and_parse(&connector(&s), &req, now));
    assert_eq!(c.person.external_id, None, "an order id is not a person id");
    assert_eq!(c.person.emails, vec!["a@example.com"]);

    let nothing = br#"{"type":"ping","timestamp":"2024-06-14T10:02:11Z","data":{"id":"x"}}"#;
    let req = testing::sign(ConnectorKind::StandardWebhooks, &s, URL, nothing, now);
    assert!(verify_and_parse(&connector(&s), &req, now).is_empty());
}
