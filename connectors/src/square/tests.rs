use super::*;
use crate::test_support::{accepted, at, only_customer, only_order, rotated, secrets, verify_and_parse};
use crate::{testing, Currency, Money};

const KEY: &str = "sq_sigkey_J1bX9Yc2LmQ4";
const URL: &str = "https://hub.example.com/webhooks/square-1";
const CUSTOMER: &[u8] = include_bytes!("fixtures/customer_created.json");
const PAYMENT: &[u8] = include_bytes!("fixtures/payment_updated.json");

fn connector(s: &Secrets) -> Square {
    Square::new(SquareConfig::default(), s).unwrap()
}

fn now() -> DateTime<Utc> {
    at(1_717_263_000)
}

#[test]
fn independent_vector_over_url_and_body_verifies() {
    // base64(HMAC-SHA256(key, url + body)) computed with Python's hmac module.
    let req = SignedRequest::post(URL, CUSTOMER)
        .with_header("x-square-hmacsha256-signature", "2djaZi3XVeumLvY2LUigvbxy3YhE5EYB8BI/AApcM0M=");
    let (id, ty) = accepted(connector(&secrets(&[(SECRET, KEY)])).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "d9a5b0c2-6e1f-3a4b-9c8d-7e6f5a4b3c2d");
    assert_eq!(ty, "customer.created");
}

#[test]
fn the_url_is_signed_exactly() {
    let s = secrets(&[(SECRET, KEY)]);
    let signed = testing::sign(ConnectorKind::Square, &s, URL, CUSTOMER, now());
    for other in [
        "http://hub.example.com/webhooks/square-1",
        "https://hub.example.com:443/webhooks/square-1",
        "https://hub.example.com/webhooks/square-1/",
    ] {
        let mut moved = signed.clone();
        moved.url = other.into();
        assert_eq!(connector(&s).verify(&moved.request(), now()), Err(WebhookError::BadSignature), "{other}");
    }
}

#[test]
fn rotation_tamper_wrong_secret_missing() {
    let old = secrets(&[(SECRET, KEY)]);
    let mut req = testing::sign(ConnectorKind::Square, &old, URL, PAYMENT, now());
    assert!(connector(&rotated(&[(SECRET, "new")], &[(SECRET, KEY)])).verify(&req.request(), now()).is_ok());
    assert_eq!(connector(&secrets(&[(SECRET, "new")])).verify(&req.request(), now()), Err(WebhookError::BadSignature));
    req.body = String::from_utf8(PAYMENT.to_vec()).unwrap().replace("2450", "2451").into_bytes();
    assert_eq!(connector(&old).verify(&req.request(), now()), Err(WebhookError::BadSignature));
    req.headers.clear();
    assert_eq!(connector(&old).verify(&req.request(), now()), Err(WebhookError::MissingSignature(HEADER)));
}

#[test]
fn customer_created_parses() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Square, &s, URL, CUSTOMER, now());
    let c = only_customer(verify_and_parse(&connector(&s), &req, now()));
    assert_eq!(c.person.external_id.as_deref(), Some("JDKYHBWT1D4F8MFH63DBMEN8Y4"));
    assert_eq!(c.person.emails, vec!["amelia.earhart@example.com"]);
    assert_eq!(c.person.phones, vec!["+1-212-555-4240"]);
    assert_eq!((c.person.given_name.as_deref(), c.person.family_name.as_deref()), (Some("Amelia"), Some("Earhart")));
    assert_eq!(c.person.birth_date, NaiveDate::from_ymd_opt(1990, 7, 14));
    let a = c.person.address.unwrap();
    assert_eq!(
        (a.city.as_deref(), a.region.as_deref(), a.postcode.as_deref()),
        (Some("Oakland"), Some("CA"), Some("94612"))
    );
    assert_eq!(c.updated_at, Some("2024-06-01T17:30:12.371Z".parse().unwrap()));
    assert_eq!(c.traits["reference_id"], "YOUR_REFERENCE_ID");
}

#[test]
fn payment_with_buyer_parses_into_an_order() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Square, &s, URL, PAYMENT, now());
    let o = only_order(verify_and_parse(&connector(&s), &req, now()));
    assert_eq!(o.external_id, "hYy9pRFVxpDsO1FB05SunFWUe9JZY");
    assert_eq!(o.person.external_id.as_deref(), Some("JDKYHBWT1D4F8MFH63DBMEN8Y4"));
    assert_eq!(o.person.emails, vec!["amelia.earhart@example.com"]);
    assert_eq!(o.total, Some(Money { minor: 2450, currency: Currency::parse("USD").unwrap() }));
    assert_eq!(o.status.as_deref(), Some("COMPLETED"));
    assert_eq!(o.placed_at, Some("2024-06-02T09:14:56.711Z".parse().unwrap()));
}

#[test]
fn anonymous_payment_and_thin_order_notices_yield_nothing() {
    let s = secrets(&[(SECRET, KEY)]);
    let anonymous = String::from_utf8(PAYMENT.to_vec())
        .unwrap()
        .replace("\"customer_id\": \"JDKYHBWT1D4F8MFH63DBMEN8Y4\",", "")
        .replace("\"buyer_email_address\": \"amelia.earhart@example.com\",", "");
    let mut v: Value = serde_json::from_str(&anonymous).unwrap();
    v["data"]["object"]["payment"].as_object_mut().unwrap().remove("billing_address");
    let body = serde_json::to_vec(&v).unwrap();
    let req = testing::sign(ConnectorKind::Square, &s, URL, &body, now());
    assert!(verify_and_parse(&connector(&s), &req, now()).is_empty());
    let order = testing::sign(ConnectorKind::Square, &s, URL, include_bytes!("fixtures/order_created.json"), now());
    let (id, ty) = accepted(connector(&s).verify(&order.request(), now()).unwrap());
    assert_eq!((id.as_str(), ty.as_str()), ("116038d3-2948-439f-8679-fc86cbf1c5fd", "order.created"));
    assert!(verify_and_parse(&connector(&s), &order, now()).is_empty());
}
