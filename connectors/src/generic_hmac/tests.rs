use super::*;
use crate::test_support::{accepted, at, only_customer, rotated, secrets, verify_and_parse};
use crate::testing;
use serde_json::json;

const KEY: &str = "gh_secret_Tq93Lz";
const URL: &str = "https://hub.example.com/webhooks/generic-1";
const CONTACT: &[u8] = include_bytes!("fixtures/contact_updated.json");
const T: i64 = 1_718_452_800;
// Computed with Python's hmac module over the fixture.
const VECTOR_TS_HEX: &str = "sha256=ac434cad094dd9fb9e56d4a1d1878d52306af0b42a721af180537707c1c1bccb";
const VECTOR_URL_SHA1_B64: &str = "mNxrnl8PGyEpO9+8E5+SYlf8EFg=";

fn acme() -> serde_json::Value {
    json!({
        "signature_header": "X-Acme-Signature",
        "prefix": "sha256=",
        "signed_content": "{timestamp}.{body}",
        "timestamp_header": "X-Acme-Timestamp",
        "event_id_pointer": "/id",
        "event_type_pointer": "/event",
        "mapping": {
            "email": "/data/contact/email",
            "phone": "/data/contact/phone",
            "external_id": "/data/contact/id",
            "given_name": "/data/contact/first_name",
            "family_name": "/data/contact/last_name",
            "updated_at": "/data/contact/updated_at"
        }
    })
}

fn build(config: &serde_json::Value, s: &Secrets) -> Box<dyn crate::Connector> {
    crate::build(ConnectorKind::GenericHmac, config, s).unwrap()
}

fn acme_delivery(sig: &str, ts: &str) -> SignedRequest {
    SignedRequest::post(URL, CONTACT).with_header("x-acme-signature", sig).with_header("x-acme-timestamp", ts)
}

#[test]
fn timestamped_hex_vector_verifies_with_pointer_ids() {
    let c = build(&acme(), &secrets(&[(SECRET, KEY)]));
    let (id, ty) = accepted(c.verify(&acme_delivery(VECTOR_TS_HEX, "1718452800").request(), at(T)).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("evt_01J0AB3C4D5E6F7G8H9J", "contact.updated"));
}

#[test]
fn url_sha1_base64_vector_verifies() {
    let config = json!({"signature_header": "x-sig", "algorithm": "sha1", "encoding": "base64", "signed_content": "{url}{body}", "event_id_header": "x-delivery"});
    let c = build(&config, &secrets(&[(SECRET, KEY)]));
    let req =
        SignedRequest::post(URL, CONTACT).with_header("x-sig", VECTOR_URL_SHA1_B64).with_header("x-delivery", "d-77");
    assert_eq!(accepted(c.verify(&req.request(), at(T)).unwrap()), ("d-77".into(), "webhook".into()));
    let mut moved = req.clone();
    moved.url = "https://hub.example.com/webhooks/generic-2".into();
    assert_eq!(c.verify(&moved.request(), at(T)), Err(WebhookError::BadSignature));
}

#[test]
fn stale_tampered_wrong_missing_and_rotation() {
    let s = secrets(&[(SECRET, KEY)]);
    let c = build(&acme(), &s);
    let req = acme_delivery(VECTOR_TS_HEX, "1718452800");
    assert_eq!(c.verify(&req.request(), at(T + 301)), Err(WebhookError::StaleTimestamp { tolerance_secs: 300 }));
    let ms = acme_delivery(VECTOR_TS_HEX, "1718452800000");
    assert_eq!(
        c.verify(&ms.request(), at(T)),
        Err(WebhookError::BadSignature),
        "the raw header value is what is signed"
    );
    let shifted = acme_delivery(VECTOR_TS_HEX, "1718452801");
    assert_eq!(c.verify(&shifted.request(), at(T)), Err(WebhookError::BadSignature));
    let mut tampered = req.clone();
    tampered.body = String::from_utf8(CONTACT.to_vec()).unwrap().replace("Mateo", "Mateus").into_bytes();
    assert_eq!(c.verify(&tampered.request(), at(T)), Err(WebhookError::BadSignature));
    assert_eq!(
        build(&acme(), &secrets(&[(SECRET, "other")])).verify(&req.request(), at(T)),
        Err(WebhookError::BadSignature)
    );
    let no_prefix = acme_delivery(VECTOR_TS_HEX.trim_start_matches("sha256="), "1718452800");
    assert_eq!(c.verify(&no_prefix.request(), at(T)), Err(WebhookError::BadSignature));
    let uppercase_hex = acme_delivery(&VECTOR_TS_HEX.to_ascii_uppercase(), "1718452800");
    assert!(c.verify(&uppercase_hex.request(), at(T)).is_ok());
    let mut no_ts = req.clone();
    no_ts.headers.retain(|(k, _)| k != "x-acme-timestamp");
    assert_eq!(c.verify(&no_ts.request(), at(T)), Err(WebhookError::MissingSignature("timestamp header")));
    assert_eq!(
        c.verify(&SignedRequest::post(URL, CONTACT).request(), at(T)),
        Err(WebhookError::MissingSignature("signature header"))
    );
    let r = build(&acme(), &rotated(&[(SECRET, "new")], &[(SECRET, KEY)]));
    assert!(r.verify(&req.request(), at(T)).is_ok());
}

#[test]
fn sign_with_config_round_trips_and_default_config_is_sha256_hex() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign_with_config(ConnectorKind::GenericHmac, &acme(), &s, URL, CONTACT, at(T)).unwrap();
    assert_eq!(req.header("x-acme-signature"), Some(VECTOR_TS_HEX));
    assert!(build(&acme(), &s).verify(&req.request(), at(T)).is_ok());
    let default = testing::sign(ConnectorKind::GenericHmac, &s, URL, CONTACT, at(T));
    assert!(default.header("x-signature").unwrap().starts_with("sha256="));
    let c = build(&json!({"signature_header": "x-signature", "prefix": "sha256="}), &s);
    let (id, ty) = accepted(c.verify(&default.request(), at(T)).unwrap());
    assert!(id.starts_with("sha256:"));
    assert_eq!(ty, "webhook");
}

#[test]
fn mapping_produces_a_customer() {
    let s = secrets(&[(SECRET, KEY)]);
    let c = only_customer(verify_and_parse(
        build(&acme(), &s).as_ref(),
        &acme_delivery(VECTOR_TS_HEX, "1718452800"),
        at(T),
    ));
    assert_eq!(c.person.external_id.as_deref(), Some("c_4471"));
    assert_eq!(c.person.emails, vec!["mateo.silva@example.pt"]);
    assert_eq!(c.person.phones, vec!["+351 21 123 4567"]);
    assert_eq!((c.person.given_name.as_deref(), c.person.family_name.as_deref()), (Some("Mateo"), Some("Silva")));
    assert_eq!(c.updated_at, Some("2024-06-15T11:59:58Z".parse().unwrap()));
    let unmapped = build(&json!({"signature_header": "x-signature"}), &s);
    let req = testing::sign(ConnectorKind::GenericHmac, &s, URL, CONTACT, at(T)).with_header("x-signature", {
        let mac = hmac(Algorithm::Sha256, KEY.as_bytes(), &[CONTACT]);
        hex::encode(mac)
    });
    assert!(verify_and_parse(unmapped.as_ref(), &req, at(T)).is_empty());
}

#[test]
fn config_errors_name_the_field() {
    let s = secrets(&[(SECRET, KEY)]);
    let field_of = |config: serde_json::Value| match crate::build(ConnectorKind::GenericHmac, &config, &s) {
        Err(ConfigError::Invalid { field, .. }) => field,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted {config}"),
    };
    assert_eq!(field_of(json!({})), "signature_header");
    assert_eq!(field_of(json!({"signature_header": "bad header"})), "signature_header");
    assert_eq!(field_of(json!({"signature_header": "x", "algorithm": "md5"})), "algorithm");
    assert_eq!(field_of(json!({"signature_header": "x", "signed_content": "{timestamp}"})), "signed_content");
    assert_eq!(field_of(json!({"signature_header": "x", "signed_content": "{body}{nonce}"})), "signed_content");
    assert_eq!(field_of(json!({"signature_header": "x", "signed_content": "{timestamp}.{body}"})), "timestamp_header");
    assert_eq!(field_of(json!({"signature_header": "x", "event_id_pointer": "id"})), "event_id_pointer");
    assert_eq!(field_of(json!({"signature_header": "x", "mapping": {"email": "email"}})), "mapping.email");
    assert_eq!(field_of(json!({"signature_header": "x", "mapping": {"emial": "/email"}})), "emial");
    assert_eq!(field_of(json!({"signature_header": "x", "tolerance_secs": -5})), "tolerance_secs");
}
