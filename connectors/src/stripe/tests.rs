use super::*;
use crate::test_support::{accepted, at, only_customer, only_order, rotated, secrets, verify_and_parse};
use crate::{testing, Currency, Money};

const KEY: &str = "whsec_5f2a9c8e7d6b4a3f1e0d9c8b7a6f5e4d";
const URL: &str = "https://hub.example.com/webhooks/stripe-1";
const CUSTOMER: &[u8] = include_bytes!("fixtures/customer_created.json");
/// Produced by the official `stripe` Python SDK (`WebhookSignature`) for `CUSTOMER` and
/// `KEY` at t=1712923410, and checked with its `verify_header`.
const SDK_HEADER: &str = "t=1712923410,v1=795a62cfc3b7055aada12092d3026073b1030754d8f50901bcfd80c0a65b4737";
const T: i64 = 1_712_923_410;

fn connector(s: &Secrets) -> Stripe {
    Stripe::new(StripeConfig::default(), s).unwrap()
}

fn with_header(value: &str) -> SignedRequest {
    SignedRequest::post(URL, CUSTOMER).with_header("stripe-signature", value)
}

#[test]
fn official_sdk_vector_verifies() {
    let (id, ty) =
        accepted(connector(&secrets(&[(SECRET, KEY)])).verify(&with_header(SDK_HEADER).request(), at(T + 5)).unwrap());
    assert_eq!(id, "evt_1P4xQ2Lk8WmZr7cD0aB3eF9g");
    assert_eq!(ty, "customer.created");
}

#[test]
fn any_valid_v1_among_several_passes() {
    let good = SDK_HEADER.split("v1=").nth(1).unwrap();
    let header = format!("t={T},v1={},v0=deadbeef,v1={good},v1=zz", "ab".repeat(32));
    assert!(connector(&secrets(&[(SECRET, KEY)])).verify(&with_header(&header).request(), at(T)).is_ok());
    let none_good = format!("t={T},v1={},v0={good}", "ab".repeat(32));
    assert_eq!(
        connector(&secrets(&[(SECRET, KEY)])).verify(&with_header(&none_good).request(), at(T)),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn previous_secret_verifies_during_rotation() {
    let s = rotated(&[(SECRET, "whsec_new")], &[(SECRET, KEY)]);
    assert!(connector(&s).verify(&with_header(SDK_HEADER).request(), at(T)).is_ok());
}

#[test]
fn tampered_wrong_secret_missing_and_malformed_are_refused() {
    let s = secrets(&[(SECRET, KEY)]);
    let mut tampered = with_header(SDK_HEADER);
    tampered.body = String::from_utf8(CUSTOMER.to_vec()).unwrap().replace("Jenny", "Jemmy").into_bytes();
    assert_eq!(connector(&s).verify(&tampered.request(), at(T)), Err(WebhookError::BadSignature));
    assert_eq!(
        connector(&secrets(&[(SECRET, "whsec_other")])).verify(&with_header(SDK_HEADER).request(), at(T)),
        Err(WebhookError::BadSignature)
    );
    let bare = SignedRequest::post(URL, CUSTOMER);
    assert_eq!(connector(&s).verify(&bare.request(), at(T)), Err(WebhookError::MissingSignature("stripe-signature")));
    assert!(matches!(connector(&s).verify(&with_header("v1=abcd").request(), at(T)), Err(WebhookError::Malformed(_))));
    // A signature over a different timestamp does not verify with this one.
    let shifted = SDK_HEADER.replace("t=1712923410", "t=1712923411");
    assert_eq!(connector(&s).verify(&with_header(&shifted).request(), at(T)), Err(WebhookError::BadSignature));
}

#[test]
fn stale_and_future_timestamps_are_refused() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = with_header(SDK_HEADER);
    assert!(connector(&s).verify(&req.request(), at(T + 300)).is_ok());
    assert_eq!(
        connector(&s).verify(&req.request(), at(T + 301)),
        Err(WebhookError::StaleTimestamp { tolerance_secs: 300 })
    );
    assert_eq!(
        connector(&s).verify(&req.request(), at(T - 301)),
        Err(WebhookError::StaleTimestamp { tolerance_secs: 300 })
    );
    let lenient = Stripe::new(StripeConfig { tolerance_secs: 900 }, &s).unwrap();
    assert!(lenient.verify(&req.request(), at(T + 600)).is_ok());
}

#[test]
fn config_is_validated_by_name() {
    let s = secrets(&[(SECRET, KEY)]);
    let err = crate::build(ConnectorKind::Stripe, &serde_json::json!({"tolerance_secs": 0}), &s).err().unwrap();
    assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == "tolerance_secs"), "{err:?}");
    let err = crate::build(ConnectorKind::Stripe, &serde_json::json!({"tolerance_secs": "ten"}), &s).err().unwrap();
    assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == "tolerance_secs"), "{err:?}");
    let err = crate::build(ConnectorKind::Stripe, &serde_json::json!({"tolerence": 10}), &s).err().unwrap();
    assert!(matches!(err, ConfigError::Invalid { ref field, .. } if field == "tolerence"), "{err:?}");
}

#[test]
fn customer_created_parses() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Stripe, &s, URL, CUSTOMER, at(T));
    let c = only_customer(verify_and_parse(&connector(&s), &req, at(T)));
    assert_eq!(c.person.external_id.as_deref(), Some("cus_PuV3n8XkQ2rT1a"));
    assert_eq!(c.person.emails, vec!["jenny.rosen@example.com"]);
    assert_eq!(c.person.phones, vec!["+14155550123"]);
    assert_eq!(c.person.full_name.as_deref(), Some("Jenny Rosen"));
    assert_eq!(c.person.country.as_deref(), Some("US"));
    assert_eq!(c.person.address.unwrap().postcode.as_deref(), Some("94103"));
    assert_eq!(c.updated_at, Some(at(1_712_923_400)));
    assert_eq!(c.traits["metadata"]["crm_segment"], "smb");
}

#[test]
fn checkout_session_completed_parses_into_an_order() {
    let s = secrets(&[(SECRET, KEY)]);
    let body = include_bytes!("fixtures/checkout_session_completed.json");
    let req = testing::sign(ConnectorKind::Stripe, &s, URL, body, at(T));
    let o = only_order(verify_and_parse(&connector(&s), &req, at(T)));
    assert_eq!(o.external_id, "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ");
    assert_eq!(o.total, Some(Money { minor: 4999, currency: Currency::parse("USD").unwrap() }));
    assert_eq!(o.status.as_deref(), Some("paid"));
    assert_eq!(o.person.external_id.as_deref(), Some("cus_PuV3n8XkQ2rT1a"));
    assert_eq!(o.person.emails, vec!["jenny.rosen@example.com"]);
    assert_eq!(o.placed_at, Some(at(1_712_924_950)));
}

#[test]
fn charge_succeeded_keeps_zero_decimal_currency_exact() {
    let s = secrets(&[(SECRET, KEY)]);
    let body = include_bytes!("fixtures/charge_succeeded.json");
    let req = testing::sign(ConnectorKind::Stripe, &s, URL, body, at(T));
    let o = only_order(verify_and_parse(&connector(&s), &req, at(T)));
    assert_eq!(o.total, Some(Money { minor: 125_000, currency: Currency::parse("JPY").unwrap() }));
    assert_eq!(o.person.external_id, None);
    assert_eq!(o.person.emails, vec!["yamada.taro@example.jp"]);
    assert_eq!(o.person.phones, vec!["+81312345678"]);
    assert_eq!(o.status.as_deref(), Some("succeeded"));
}

#[test]
fn other_event_types_yield_nothing() {
    let c = connector(&secrets(&[(SECRET, KEY)]));
    let ev = StoredEvent {
        event_id: "evt".into(),
        event_type: "invoice.paid".into(),
        headers: vec![],
        query: vec![],
        body: br#"{"id":"evt","type":"invoice.paid","data":{"object":{}}}"#.to_vec(),
        received_at: at(T),
    };
    assert!(c.parse(&ev).unwrap().is_empty());
}
