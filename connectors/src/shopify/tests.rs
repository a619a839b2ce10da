use super::*;
use crate::test_support::{accepted, at, only_customer, only_order, rotated, secrets, verify_and_parse};
use crate::testing;
use crate::Currency;

const KEY: &str = "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";
const URL: &str = "https://hub.example.com/webhooks/shop-1";
const CUSTOMER: &[u8] = include_bytes!("fixtures/customers_create.json");
const ORDER: &[u8] = include_bytes!("fixtures/orders_create.json");

fn connector(s: &Secrets) -> Shopify {
    Shopify::new(ShopifyConfig::default(), s).unwrap()
}

fn now() -> DateTime<Utc> {
    at(1_712_923_410)
}

#[test]
fn independent_vector_verifies() {
    // base64(HMAC-SHA256(key, body)) computed with Python's hmac module.
    let req = SignedRequest::post(URL, CUSTOMER)
        .with_header("X-Shopify-Hmac-Sha256", "L5mVSGo5l2ESHm8/6aeNJMH6uBbUliPDD5fxzTynRhE=")
        .with_header("X-Shopify-Topic", "customers/create")
        .with_header("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    let (id, topic) = accepted(connector(&secrets(&[(SECRET, KEY)])).verify(&req.request(), now()).unwrap());
    assert_eq!(id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    assert_eq!(topic, "customers/create");
}

#[test]
fn event_id_prefers_event_header_and_accepts_new_header_names() {
    let s = secrets(&[(SECRET, KEY)]);
    let signed = testing::sign(ConnectorKind::Shopify, &s, URL, CUSTOMER, now());
    let mac = signed.header("x-shopify-hmac-sha256").unwrap().to_string();
    let req = SignedRequest::post(URL, CUSTOMER)
        .with_header("shopify-hmac-sha256", mac.clone())
        .with_header("shopify-topic", "customers/update")
        .with_header("shopify-webhook-id", "delivery-1")
        .with_header("shopify-event-id", "event-1");
    assert_eq!(
        accepted(connector(&s).verify(&req.request(), now()).unwrap()),
        ("event-1".into(), "customers/update".into())
    );

    let bare = SignedRequest::post(URL, CUSTOMER).with_header("x-shopify-hmac-sha256", mac);
    let (id, topic) = accepted(connector(&s).verify(&bare.request(), now()).unwrap());
    assert_eq!(id, format!("sha256:{}", crate::signature::sha256_hex(CUSTOMER)));
    assert_eq!(topic, "unknown");
}

#[test]
fn previous_secret_verifies_during_rotation() {
    let old = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Shopify, &old, URL, CUSTOMER, now());
    let both = rotated(&[(SECRET, "shpss_new")], &[(SECRET, KEY)]);
    assert!(connector(&both).verify(&req.request(), now()).is_ok());
    let only_new = secrets(&[(SECRET, "shpss_new")]);
    assert_eq!(connector(&only_new).verify(&req.request(), now()), Err(WebhookError::BadSignature));
}

#[test]
fn tampered_body_wrong_secret_and_missing_header_are_refused() {
    let s = secrets(&[(SECRET, KEY)]);
    let mut req = testing::sign(ConnectorKind::Shopify, &s, URL, CUSTOMER, now());
    assert!(connector(&s).verify(&req.request(), now()).is_ok());
    assert_eq!(
        connector(&secrets(&[(SECRET, "wrong")])).verify(&req.request(), now()),
        Err(WebhookError::BadSignature)
    );
    req.body = CUSTOMER.replace_first(b"Gonz", b"Gomz");
    assert_eq!(connector(&s).verify(&req.request(), now()), Err(WebhookError::BadSignature));
    req.headers.retain(|(k, _)| k != "x-shopify-hmac-sha256");
    assert_eq!(
        connector(&s).verify(&req.request(), now()),
        Err(WebhookError::MissingSignature("x-shopify-hmac-sha256"))
    );
    let mut get = testing::sign(ConnectorKind::Shopify, &s, URL, CUSTOMER, now());
    get.method = "GET";
    assert_eq!(connector(&s).verify(&get.request(), now()), Err(WebhookError::MethodNotAllowed));
}

#[test]
fn garbage_signature_is_bad_not_a_panic() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = SignedRequest::post(URL, CUSTOMER).with_header("x-shopify-hmac-sha256", "%%%not base64");
    assert_eq!(connector(&s).verify(&req.request(), now()), Err(WebhookError::BadSignature));
}

#[test]
fn missing_secret_is_a_config_error() {
    assert_eq!(
        Shopify::new(ShopifyConfig::default(), &Secrets::default()).unwrap_err(),
        ConfigError::MissingSecret(SECRET.into())
    );
}

#[test]
fn customer_create_parses_identity_address_and_traits() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Shopify, &s, URL, CUSTOMER, now());
    assert_eq!(req.header("x-shopify-topic"), Some("customers/create"));
    let c = only_customer(verify_and_parse(&connector(&s), &req, now()));
    assert_eq!(c.person.external_id.as_deref(), Some("7063498293520"));
    assert_eq!(c.person.emails, vec!["maria.gonzalez@example.com"]);
    assert_eq!(c.person.phones, vec!["+16135550142", "+12125550199"]);
    assert_eq!(c.person.given_name.as_deref(), Some("María"));
    assert_eq!(c.person.family_name.as_deref(), Some("González"));
    assert_eq!(c.person.country.as_deref(), Some("US"));
    let a = c.person.address.unwrap();
    assert_eq!(
        (a.line1.as_deref(), a.city.as_deref(), a.region.as_deref()),
        (Some("350 Fifth Avenue"), Some("New York"), Some("NY"))
    );
    assert_eq!(a.postcode.as_deref(), Some("10118"));
    assert_eq!(c.updated_at.unwrap().to_rfc3339(), "2024-03-05T15:15:43+00:00");
    assert_eq!(c.traits["tags"], serde_json::json!(["vip", "newsletter"]));
    assert_eq!(c.traits["accepts_marketing"], serde_json::json!(true));
    assert_eq!(c.traits["email_marketing_consent"], serde_json::json!("subscribed"));
}

#[test]
fn order_create_parses_money_lines_and_buyer() {
    let s = secrets(&[(SECRET, KEY)]);
    let req = testing::sign(ConnectorKind::Shopify, &s, URL, ORDER, now());
    assert_eq!(req.header("x-shopify-topic"), Some("orders/create"));
    let o = only_order(verify_and_parse(&connector(&s), &req, now()));
    let eur = Currency::parse("EUR").unwrap();
    assert_eq!(o.external_id, "5837261940112");
    assert_eq!(o.total, Some(crate::Money { minor: 11770, currency: eur }));
    assert_eq!(o.status.as_deref(), Some("paid"));
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.lines[0].sku.as_deref(), Some("SCARF-MER-CHR"));
    assert_eq!(o.lines[0].quantity, 2);
    assert_eq!(o.lines[0].price, Some(crate::Money { minor: 3990, currency: eur }));
    assert_eq!(o.lines[1].sku, None);
    assert_eq!(o.person.external_id.as_deref(), Some("7063498299911"));
    assert_eq!(o.person.emails, vec!["jon.smith@example.org"]);
    assert_eq!(o.person.phones, vec!["030 1234567", "+4915123456789"]);
    assert_eq!(o.person.given_name.as_deref(), Some("Jon"));
    assert_eq!(o.person.country.as_deref(), Some("DE"));
    assert_eq!(o.person.address.unwrap().postcode.as_deref(), Some("10178"));
    assert_eq!(o.placed_at.unwrap().to_rfc3339(), "2024-04-12T12:03:27+00:00");
    assert_eq!(o.updated_at.unwrap().to_rfc3339(), "2024-04-12T12:03:29+00:00");
}

#[test]
fn privacy_topics_parse_into_privacy_records() {
    let s = secrets(&[(SECRET, KEY)]);
    let c = connector(&s);
    let redact =
        testing::sign(ConnectorKind::Shopify, &s, URL, include_bytes!("fixtures/customers_redact.json"), now());
    match verify_and_parse(&c, &redact, now()).as_slice() {
        [Record::Erasure(p)] => {
            assert_eq!(p.person.external_id.as_deref(), Some("191167"));
            assert_eq!(p.person.emails, vec!["john@example.com"]);
            assert_eq!(p.person.phones, vec!["555-625-1199"]);
            assert_eq!(p.requested_at, Some(now()));
        }
        other => panic!("{other:?}"),
    }
    let export =
        testing::sign(ConnectorKind::Shopify, &s, URL, include_bytes!("fixtures/customers_data_request.json"), now());
    assert!(
        matches!(verify_and_parse(&c, &export, now()).as_slice(), [Record::DataRequest(p)] if p.person.external_id.as_deref() == Some("191167"))
    );
    let shop = testing::sign(ConnectorKind::Shopify, &s, URL, include_bytes!("fixtures/shop_redact.json"), now());
    assert_eq!(verify_and_parse(&c, &shop, now()), vec![Record::ShopErasure { requested_at: Some(now()) }]);
}

#[test]
fn unknown_topics_and_deletes_yield_nothing_and_bad_json_is_an_error() {
    let c = connector(&secrets(&[(SECRET, KEY)]));
    let ev = |topic: &str, body: &[u8]| StoredEvent {
        event_id: "e".into(),
        event_type: topic.into(),
        headers: vec![],
        query: vec![],
        body: body.to_vec(),
        received_at: now(),
    };
    assert!(c.parse(&ev("products/create", b"{}")).unwrap().is_empty());
    assert!(c.parse(&ev("orders/delete", br#"{"id":1}"#)).unwrap().is_empty());
    assert!(c.parse(&ev("customers/create", b"not json")).is_err());
    assert!(matches!(c.parse(&ev("orders/create", b"{}")), Err(ParseError::MissingField("id"))));
}

trait ReplaceFirst {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceFirst for [u8] {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
        let pos = self.windows(from.len()).position(|w| w == from).unwrap();
        [&self[..pos], to, &self[pos + from.len()..]].concat()
    }
}
