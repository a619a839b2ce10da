use super::*;
use crate::test_support::{accepted, at, only_customer, only_order, rotated, secrets, verify_and_parse};
use crate::{testing, Currency, Money};

const KEY: &str = "wc_secret_9f8e7d6c5b4a";
const URL: &str = "https://hub.example.com/webhooks/woo-1";
const CUSTOMER: &[u8] = include_bytes!("fixtures/customer_created.json");
const ORDER: &[u8] = include_bytes!("fixtures/order_created_guest.json");

fn connector(s: &Secrets) -> Woocommerce {
    Woocommerce::new(WoocommerceConfig::default(), s).unwrap()
}

fn now() -> DateTime<Utc> {
    at(1_714_745_000)
}

#[test]
fn independent_vector_verifies_with_composite_event_id() {
    // base64(HMAC-SHA256(key, body)) computed with Python's hmac module.
    let req = SignedRequest::post(URL, CUSTOMER)
        .with_header("X-WC-Webhook-Signature", "OZvTN5No5/QSZpO4y7zVD3J838cz+Mt/XAnbjI/bRD0=")
        .with_header("X-WC-Webhook-Topic", "customer.created");
    let (id, topic) = accepted(connector(&secrets(&[(SECRET, KEY)])).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "customer.created:25:2024-05-02T09:42:11");
    assert_eq!(topic, "customer.created");
}

#[test]
fn creation_ping_is_answered_without_storing() {
    let c = connector(&secrets(&[(SECRET, KEY)]));
    let ping = SignedRequest::post(URL, b"webhook_id=12");
    assert_eq!(c.verify(&ping.request(), now()), Ok(WebhookOutcome::Respond(Reply::ok())));
    let not_ping = SignedRequest::post(URL, b"webhook_id=12&x=1");
    assert_eq!(c.verify(&not_ping.request(), now()), Err(WebhookError::MissingSignature("x-wc-webhook-signature")));
    let json = SignedRequest::post(URL, CUSTOMER);
    assert_eq!(c.verify(&json.request(), now()), Err(WebhookError::MissingSignature("x-wc-webhook-signature")));
}

#[test]
fn rotation_tamper_and_wrong_secret() {
    let old = secrets(&[(SECRET, KEY)]);
    let mut req = testing::sign(ConnectorKind::Woocommerce, &old, URL, ORDER, now());
    assert!(connector(&rotated(&[(SECRET, "new")], &[(SECRET, KEY)])).verify(&req.request(), now()).is_ok());
    assert_eq!(connector(&secrets(&[(SECRET, "new")])).verify(&req.request(), now()), Err(WebhookError::BadSignature));
    req.body.push(b' ');
    assert_eq!(connector(&old).verify(&req.request(), now()), Err(WebhookError::BadSignature));
}

#[test]
fn customer_parses_with_billing_identity() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Woocommerce, &s, URL, CUSTOMER, now());
    let c = only_customer(verify_and_parse(&connector(&s), &req, now()));
    assert_eq!(c.person.external_id.as_deref(), Some("25"));
    assert_eq!(c.person.emails, vec!["claire.dubois@example.fr"]);
    assert_eq!(c.person.phones, vec!["01 42 76 40 40"]);
    assert_eq!(c.person.given_name.as_deref(), Some("Claire"));
    assert_eq!(c.person.country.as_deref(), Some("FR"));
    assert_eq!(c.person.address.as_ref().unwrap().postcode.as_deref(), Some("75004"));
    assert_eq!(c.person.address.unwrap().region, None);
    assert_eq!(c.updated_at, Some("2024-05-02T09:42:11Z".parse().unwrap()));
    assert_eq!(c.traits["username"], "claire.dubois");
}

#[test]
fn guest_order_has_no_external_id_and_exact_money() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Woocommerce, &s, URL, ORDER, now());
    assert_eq!(req.header("x-wc-webhook-topic"), Some("order.created"));
    let (id, _) = accepted(connector(&s).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "order.created:727:2024-05-03T14:20:07");
    let o = only_order(verify_and_parse(&connector(&s), &req, now()));
    let eur = Currency::parse("EUR").unwrap();
    assert_eq!(o.external_id, "727");
    assert_eq!(o.person.external_id, None);
    assert_eq!(o.person.emails, vec!["lukas.weber@example.at"]);
    assert_eq!(o.person.phones, vec!["+43 1 234567"]);
    assert_eq!(o.total, Some(Money { minor: 4880, currency: eur }));
    assert_eq!(o.lines[0].price, Some(Money { minor: 895, currency: eur }));
    assert_eq!(o.lines[0].quantity, 2);
    assert_eq!(o.lines[1].sku, None);
    assert_eq!(o.status.as_deref(), Some("processing"));
    assert_eq!(o.placed_at, Some("2024-05-03T14:20:05Z".parse().unwrap()));
}

#[test]
fn registered_customer_order_keeps_customer_id() {
    let s = secrets(&[(SECRET, KEY)]);
    let body = String::from_utf8(ORDER.to_vec()).unwrap().replace("\"customer_id\": 0", "\"customer_id\": 25");
    let req = testing::sign(ConnectorKind::Woocommerce, &s, URL, body.as_bytes(), now());
    let o = only_order(verify_and_parse(&connector(&s), &req, now()));
    assert_eq!(o.person.external_id.as_deref(), Some("25"));
}

#[test]
fn deletes_and_other_topics_yield_nothing() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Woocommerce, &s, URL, br#"{"id":25}"#, now())
        .with_header("x-wc-webhook-topic", "customer.deleted");
    let (id, _) = accepted(connector(&s).verify(&req.request(), now()).unwrap());
    assert!(id.starts_with("sha256:"));
    assert!(verify_and_parse(&connector(&s), &req, now()).is_empty());
}
