//! Webhooks end to end: every platform's verification through HTTP, the durable inbox
//! (dedupe, nothing stored on refusal), processing into customers, retries and dead
//! letters, replays, secret rotation, secrets at rest, and one person across four channels.

use chrono::{Duration, Utc};
use junction_connectors::testing::{self, SignedRequest};
use junction_connectors::{ConnectorKind, Secrets};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    every_platform_verifies_exactly_and_refusals_store_nothing,
    duplicates_have_one_effect_and_handshakes_answer,
    rotation_keeps_the_old_secret_valid_and_secrets_are_write_only,
    failures_retry_then_dead_letter_and_replay,
    one_person_across_shop_pos_messaging_and_forms,
    shopify_privacy_topics_erase_and_record,
);

pub struct Platform {
    pub kind: ConnectorKind,
    pub secrets: Value,
    pub config: Value,
    pub fixture: &'static str,
    /// Whether tampering with the body is detectable (the body is signed).
    pub body_signed: bool,
    /// Whether the scheme signs a timestamp.
    pub timestamped: bool,
}

pub fn platforms() -> Vec<Platform> {
    let p = |kind, secrets: Value, config: Value, fixture, body_signed, timestamped| Platform {
        kind,
        secrets,
        config,
        fixture,
        body_signed,
        timestamped,
    };
    vec![
        p(
            ConnectorKind::Shopify,
            json!({"client_secret": "shpss_0123456789abcdef"}),
            json!({}),
            "shopify/fixtures/orders_create.json",
            true,
            false,
        ),
        p(
            ConnectorKind::Woocommerce,
            json!({"webhook_secret": "wc_secret_0123456789"}),
            json!({}),
            "woocommerce/fixtures/customer_created.json",
            true,
            false,
        ),
        p(
            ConnectorKind::Stripe,
            json!({"signing_secret": "whsec_test_0123456789abcdef"}),
            json!({}),
            "stripe/fixtures/customer_created.json",
            true,
            true,
        ),
        p(
            ConnectorKind::Square,
            json!({"signature_key": "sq_sig_key_0123456789"}),
            json!({}),
            "square/fixtures/customer_created.json",
            true,
            false,
        ),
        p(
            ConnectorKind::Typeform,
            json!({"secret": "tf_secret_0123456789"}),
            json!({}),
            "typeform/fixtures/form_response.json",
            true,
            false,
        ),
        p(
            ConnectorKind::Jotform,
            json!({"url_token": "jf_token_0123456789"}),
            json!({}),
            "jotform/fixtures/submission_multipart.txt",
            false,
            false,
        ),
        p(
            ConnectorKind::Twilio,
            json!({"auth_token": "tw_auth_token_0123456789"}),
            json!({}),
            "twilio/fixtures/inbound_sms.txt",
            true,
            false,
        ),
        p(
            ConnectorKind::Whatsapp,
            json!({"app_secret": "wa_app_secret_0123456789", "verify_token": "wa_verify_0123"}),
            json!({}),
            "whatsapp/fixtures/messages_text.json",
            true,
            false,
        ),
        p(
            ConnectorKind::Slack,
            json!({"signing_secret": "slack_signing_0123456789"}),
            json!({}),
            "slack/fixtures/team_join.json",
            true,
            true,
        ),
        p(
            ConnectorKind::Wechat,
            json!({"token": "wechat_token_0123456789"}),
            json!({}),
            "wechat/fixtures/text_message.xml",
            false,
            true,
        ),
        p(
            ConnectorKind::StandardWebhooks,
            json!({"secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}),
            json!({}),
            "standard_webhooks/fixtures/contact_created.json",
            true,
            true,
        ),
        p(
            ConnectorKind::GenericHmac,
            json!({"secret": "generic_secret_0123456789"}),
            json!({"signature_header": "x-signature", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=",
                   "event_id_pointer": "/id", "mapping": {"email": "/data/contact/email", "phone": "/data/contact/phone",
                   "external_id": "/data/contact/id", "given_name": "/data/contact/first_name"}}),
            "generic_hmac/fixtures/contact_updated.json",
            true,
            false,
        ),
    ]
}

pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/connectors/src/{path}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

pub fn secrets_of(v: &Value) -> Secrets {
    let mut s = Secrets::default();
    for (k, v) in v.as_object().unwrap() {
        s.current.insert(k.clone(), v.as_str().unwrap().to_string());
    }
    s
}

/// Create a connector through GraphQL; returns its id.
pub async fn create_connector(
    app: &TestApp,
    kind: ConnectorKind,
    name: &str,
    secrets: &Value,
    config: &Value,
) -> String {
    let d = app
        .gql_ok(
            "mutation($i: CreateConnectorInput!) { createConnector(input: $i) { id webhookUrl secretLast4 } }",
            json!({"i": {"kind": kind.as_str(), "name": name, "secrets": secrets, "config": config}}),
        )
        .await;
    let id = d["createConnector"]["id"].as_str().unwrap().to_string();
    assert_eq!(d["createConnector"]["webhookUrl"], format!("https://hub.example.test/webhooks/{id}"));
    id
}

/// The public URL a platform would call for this connector.
pub fn public_url(id: &str) -> String {
    format!("https://hub.example.test/webhooks/{id}")
}

/// Send a signed request to the test server (rewriting the public host to the local one).
pub async fn send(app: &TestApp, req: &SignedRequest) -> reqwest::Response {
    let path = req.url.strip_prefix("https://hub.example.test").expect("public url");
    let method = if req.method == "GET" { reqwest::Method::GET } else { reqwest::Method::POST };
    let mut r = app.client.request(method, app.url(path));
    for (k, v) in &req.headers {
        r = r.header(k, v);
    }
    r.body(req.body.clone()).send().await.expect("webhook request")
}

pub async fn sign(p: &Platform, id: &str, secrets: &Value, body: &[u8], now: chrono::DateTime<Utc>) -> SignedRequest {
    testing::sign_with_config(p.kind, &p.config, &secrets_of(secrets), &public_url(id), body, now).expect("sign")
}

pub async fn connector_state(app: &TestApp, id: &str) -> Value {
    app.gql_ok(
        "query($id: ID!) { connector(id: $id) { rejectedDeliveries inboxCounts { status count } } }",
        json!({"id": id}),
    )
    .await["connector"]
        .clone()
}

pub fn inbox_total(state: &Value) -> i64 {
    state["inboxCounts"].as_array().unwrap().iter().map(|c| c["count"].as_i64().unwrap()).sum()
}

/// Wait until the connector has `n` processed inbox events.
pub async fn wait_processed(app: &TestApp, id: &str, n: i64) -> Value {
    for _ in 0..200 {
        let s = connector_state(app, id).await;
        let processed = s["inboxCounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "processed")
            .map(|c| c["count"].as_i64().unwrap())
            .unwrap_or(0);
        if processed >= n {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("events not processed in time: {}", connector_state(app, id).await);
}

async fn every_platform_verifies_exactly_and_refusals_store_nothing(app: TestApp) {
    let now = Utc::now();
    for p in platforms() {
        let name = format!("{}-main", p.kind);
        let id = create_connector(&app, p.kind, &name, &p.secrets, &p.config).await;
        let body = fixture(p.fixture);
        let kind = p.kind;

        // Wrong secret.
        let mut wrong = p.secrets.clone();
        for v in wrong.as_object_mut().unwrap().values_mut() {
            *v = json!(format!("{}x", v.as_str().unwrap()));
        }
        if kind == ConnectorKind::StandardWebhooks {
            wrong = json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
        }
        let r = send(&app, &sign(&p, &id, &wrong, &body, now).await).await;
        assert_eq!(r.status(), 401, "{kind}: wrong secret");

        // Missing signature: only the content type is left.
        let mut bare = sign(&p, &id, &p.secrets, &body, now).await;
        bare.headers.retain(|(k, _)| k == "content-type");
        bare.url = public_url(&id);
        let r = send(&app, &bare).await;
        assert_eq!(r.status(), 401, "{kind}: missing signature");

        // Tampered body.
        if p.body_signed {
            let mut tampered = sign(&p, &id, &p.secrets, &body, now).await;
            let last = tampered.body.iter().rposition(|b| b.is_ascii_alphanumeric()).unwrap();
            tampered.body[last] = if tampered.body[last] == b'7' { b'8' } else { b'7' };
            let r = send(&app, &tampered).await;
            assert_eq!(r.status(), 401, "{kind}: tampered body");
        }

        // Stale timestamp.
        if p.timestamped {
            let r = send(&app, &sign(&p, &id, &p.secrets, &body, now - Duration::hours(1)).await).await;
            assert_eq!(r.status(), 401, "{kind}: stale timestamp");
        }

        let before = connector_state(&app, &id).await;
        assert_eq!(inbox_total(&before), 0, "{kind}: a refused delivery stored something");
        let refused = 2 + p.body_signed as i64 + p.timestamped as i64;
        assert_eq!(before["rejectedDeliveries"], refused, "{kind}: rejected deliveries are counted");

        // Valid.
        let r = send(&app, &sign(&p, &id, &p.secrets, &body, now).await).await;
        assert!(r.status().is_success(), "{kind}: valid delivery answered {}", r.status());
        if kind == ConnectorKind::Wechat {
            assert_eq!(r.text().await.unwrap(), "success");
        }
        let after = wait_processed(&app, &id, 1).await;
        assert_eq!(inbox_total(&after), 1, "{kind}");
    }
    // Every platform's delivery produced customer data.
    let d = app.gql_ok("{ customers(first: 100) { totalCount } }", json!({})).await;
    assert!(d["customers"]["totalCount"].as_u64().unwrap() >= 10, "{d}");
}

async fn duplicates_have_one_effect_and_handshakes_answer(app: TestApp) {
    let now = Utc::now();
    let all = platforms();
    let shopify = &all[0];
    let id = create_connector(&app, shopify.kind, "shop", &shopify.secrets, &shopify.config).await;
    let req = sign(shopify, &id, &shopify.secrets, &fixture(shopify.fixture), now).await;
    for _ in 0..3 {
        assert_eq!(send(&app, &req).await.status(), 200);
    }
    wait_processed(&app, &id, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let s = connector_state(&app, &id).await;
    assert_eq!(inbox_total(&s), 1, "retries of one event are stored once");
    let d = app.gql_ok("{ customers { totalCount nodes { orders { externalId total { amount currency } } events { edges { node { type } } } } } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 1);
    let c = &d["customers"]["nodes"][0];
    assert_eq!(c["orders"].as_array().unwrap().len(), 1);
    assert_eq!(c["events"]["edges"].as_array().unwrap().len(), 1, "one order_placed event: {c}");

    // WhatsApp GET handshake.
    let wa = &all[7];
    let wa_id = create_connector(&app, wa.kind, "wa", &wa.secrets, &wa.config).await;
    let hs = testing::handshake(wa.kind, &secrets_of(&wa.secrets), &public_url(&wa_id), "challenge-123", now).unwrap();
    let r = send(&app, &hs).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "challenge-123");
    let bad = testing::handshake(
        wa.kind,
        &secrets_of(&json!({"app_secret": "a_secret_value_1", "verify_token": "wrong"})),
        &public_url(&wa_id),
        "c",
        now,
    )
    .unwrap();
    assert_eq!(send(&app, &bad).await.status(), 401);

    // WeChat GET echostr.
    let wc = &all[9];
    let wc_id = create_connector(&app, wc.kind, "wc", &wc.secrets, &wc.config).await;
    let hs = testing::handshake(wc.kind, &secrets_of(&wc.secrets), &public_url(&wc_id), "echo-456", now).unwrap();
    let r = send(&app, &hs).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "echo-456");

    // Slack url_verification (signed) answers the challenge and stores nothing.
    let sl = &all[8];
    let sl_id = create_connector(&app, sl.kind, "slack", &sl.secrets, &sl.config).await;
    let body = fixture("slack/fixtures/url_verification.json");
    let challenge = serde_json::from_slice::<Value>(&body).unwrap()["challenge"].as_str().unwrap().to_string();
    let r = send(&app, &sign(sl, &sl_id, &sl.secrets, &body, now).await).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(&challenge));
    assert_eq!(inbox_total(&connector_state(&app, &sl_id).await), 0);

    // WooCommerce's unsigned creation ping is answered 200 and stores nothing.
    let wc = &all[1];
    let woo_id = create_connector(&app, wc.kind, "woo", &wc.secrets, &wc.config).await;
    let r = app
        .client
        .post(app.url(&format!("/webhooks/{woo_id}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("webhook_id=42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(inbox_total(&connector_state(&app, &woo_id).await), 0);

    // Unknown connector and oversized body.
    let r = app.client.post(app.url("/webhooks/con_0192f0a0b1c27d3e8f9a0b1c2d3e4f50")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(app.post_oversized(&format!("/webhooks/{id}"), 2 * 1024 * 1024).await, 413);
}

async fn rotation_keeps_the_old_secret_valid_and_secrets_are_write_only(app: TestApp) {
    let now = Utc::now();
    let all = platforms();
    let stripe = &all[2];
    let id = create_connector(&app, stripe.kind, "stripe", &stripe.secrets, &stripe.config).await;
    let d = app
        .gql_ok(
            "mutation($id: ID!) { rotateConnectorSecret(id: $id, secrets: {signing_secret: \"whsec_new_secret_value_9876\"}, graceSeconds: 3600) { secretLast4 previousSecretExpiresAt } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(d["rotateConnectorSecret"]["secretLast4"], "9876");
    assert!(d["rotateConnectorSecret"]["previousSecretExpiresAt"].is_string());

    let body = |n: u32| {
        format!(
            r#"{{"id":"evt_rot_{n}","object":"event","type":"customer.created","created":{},"data":{{"object":{{"id":"cus_rot{n}","object":"customer","email":"rot{n}@acme.io","name":"Rot {n}"}}}}}}"#,
            now.timestamp()
        )
    };
    let old = send(&app, &sign(stripe, &id, &stripe.secrets, body(1).as_bytes(), now).await).await;
    assert_eq!(old.status(), 200, "old secret verifies during the grace period");
    let new = send(
        &app,
        &sign(stripe, &id, &json!({"signing_secret": "whsec_new_secret_value_9876"}), body(2).as_bytes(), now).await,
    )
    .await;
    assert_eq!(new.status(), 200);
    // Without a grace period the old secret stops working at once.
    app.gql_ok(
        "mutation($id: ID!) { rotateConnectorSecret(id: $id, secrets: {signing_secret: \"whsec_third_secret_5555\"}, graceSeconds: 0) { id } }",
        json!({"id": id}),
    )
    .await;
    let r = send(
        &app,
        &sign(stripe, &id, &json!({"signing_secret": "whsec_new_secret_value_9876"}), body(3).as_bytes(), now).await,
    )
    .await;
    assert_eq!(r.status(), 401);

    // Secrets are write-only and encrypted at rest.
    let schema = app.gql_ok("{ __type(name: \"Connector\") { fields { name } } }", json!({})).await;
    let fields: Vec<&str> =
        schema["__type"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(fields.contains(&"secretLast4") && !fields.contains(&"secrets"), "{fields:?}");
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let rows =
        db.query_all(Statement::from_string(db.get_database_backend(), "SELECT * FROM connectors")).await.unwrap();
    let dump = format!("{rows:?}");
    for secret in ["whsec_third_secret_5555", "whsec_new_secret_value_9876", "whsec_test_0123456789abcdef"] {
        assert!(!dump.contains(secret), "secret found in clear in the database");
    }
    // Bad config names the field.
    let body = app
        .gql("mutation { createConnector(input: {kind: \"stripe\", name: \"s2\", secrets: {}}) { id } }", json!({}))
        .await;
    assert_eq!(crate::helpers::error_code(&body), ("VALIDATION".into(), "secrets.signing_secret".into()));
    let body = app.gql("mutation { createConnector(input: {kind: \"nope\", name: \"n\"}) { id } }", json!({})).await;
    assert_eq!(crate::helpers::error_code(&body).1, "input.kind");
    assert!(body.to_string().contains("shopify"), "the error lists valid kinds");
}

async fn failures_retry_then_dead_letter_and_replay(app: TestApp) {
    let now = Utc::now();
    let all = platforms();
    let std = &all[10];
    let id = create_connector(&app, std.kind, "std", &std.secrets, &std.config).await;
    // Signed correctly but not JSON: accepted (verified), then fails to parse on every attempt.
    let r = send(&app, &sign(std, &id, &std.secrets, b"this is not json", now).await).await;
    assert_eq!(r.status(), 200);
    // Make it due again quickly, as many times as the attempts allow.
    let max = app.state.config.ingest.max_attempts;
    for _ in 0..max + 2 {
        junction::ingest::worker::run_once(&app.state, 16).await.unwrap();
        use sea_orm::{ConnectionTrait, Database, Statement};
        let db = Database::connect(app.database_url.as_str()).await.unwrap();
        db.execute(Statement::from_string(
            db.get_database_backend(),
            "UPDATE inbox SET next_attempt_at = received_at WHERE status = 'retrying'",
        ))
        .await
        .unwrap();
        db.close().await.ok();
    }
    let d = app
        .gql_ok(
            "query($c: ID!) { inboxEvents(connectorId: $c, status: DEAD) { id attempts lastError status } }",
            json!({"c": id}),
        )
        .await;
    let dead = d["inboxEvents"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{d}");
    assert_eq!(dead[0]["attempts"], max);
    assert!(dead[0]["lastError"].as_str().unwrap().contains("parse"), "{d}");

    let d = app.gql_ok("mutation($c: ID!) { replayDeadLetters(connectorId: $c) { requeued } }", json!({"c": id})).await;
    assert_eq!(d["replayDeadLetters"]["requeued"], 1);
    let d = app.gql_ok("query($c: ID!) { inboxEvents(connectorId: $c, status: DEAD) { id } }", json!({"c": id})).await;
    assert_eq!(d["inboxEvents"].as_array().unwrap().len(), 0);
    let ev = app.gql_ok("query($c: ID!) { inboxEvents(connectorId: $c) { id } }", json!({"c": id})).await;
    let eid = ev["inboxEvents"][0]["id"].clone();
    let d = app.gql_ok("mutation($id: ID!) { replayEvent(id: $id) { requeued } }", json!({"id": eid})).await;
    assert_eq!(d["replayEvent"]["requeued"], 1);
}

async fn one_person_across_shop_pos_messaging_and_forms(app: TestApp) {
    let now = Utc::now();
    let all = platforms();
    let (shopify, square, whatsapp, typeform) = (&all[0], &all[3], &all[7], &all[4]);
    let shop_id = create_connector(&app, shopify.kind, "shop", &shopify.secrets, &shopify.config).await;
    let sq_id = create_connector(&app, square.kind, "pos", &square.secrets, &square.config).await;
    let wa_id = create_connector(&app, whatsapp.kind, "wa", &whatsapp.secrets, &whatsapp.config).await;
    let tf_id = create_connector(&app, typeform.kind, "forms", &typeform.secrets, &typeform.config).await;

    // Shopify order: email + phone on the billing address links the two.
    let order = json!({"id": 820982911946154508u64, "email": "lena.berg@acme.io", "phone": "+4915112345678",
        "created_at": "2025-05-01T10:00:00Z", "updated_at": "2025-05-01T10:00:00Z", "currency": "EUR", "total_price": "59.90",
        "financial_status": "paid", "customer": {"id": 115310627314723954u64, "email": "lena.berg@acme.io", "first_name": "Lena", "last_name": "Berg"},
        "billing_address": {"first_name": "Lena", "last_name": "Berg", "phone": "+49 151 12345678", "city": "Berlin", "zip": "10115", "country_code": "DE"},
        "line_items": [{"id": 1, "title": "Tea", "quantity": 2, "price": "29.95", "sku": "TEA"}]});
    let mut req = sign(shopify, &shop_id, &shopify.secrets, order.to_string().as_bytes(), now).await;
    req.headers.retain(|(k, _)| k != "x-shopify-topic");
    req.headers.push(("x-shopify-topic".into(), "orders/create".into()));
    let req = resign_shopify(req, &shopify.secrets);
    assert_eq!(send(&app, &req).await.status(), 200);

    // Square POS sale: customer with the phone only.
    let sale = json!({"merchant_id": "ML1", "type": "customer.created", "event_id": "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc", "created_at": "2025-05-02T10:00:00Z",
        "data": {"type": "customer", "id": "sq-cust-1", "object": {"customer": {"id": "sq-cust-1", "given_name": "Lena", "family_name": "Berg",
        "phone_number": "+49 151 12345678", "created_at": "2025-05-02T10:00:00Z", "updated_at": "2025-05-02T10:00:00Z"}}}});
    assert_eq!(
        send(&app, &sign(square, &sq_id, &square.secrets, sale.to_string().as_bytes(), now).await).await.status(),
        200
    );

    // WhatsApp message from the same phone.
    let msg = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550001111", "phone_number_id": "123"},
        "contacts": [{"profile": {"name": "Lena"}, "wa_id": "4915112345678"}],
        "messages": [{"from": "4915112345678", "id": "wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFjNFQjA=", "timestamp": "1746180000", "type": "text", "text": {"body": "Is my tea shipped?"}}]}}]}]});
    assert_eq!(
        send(&app, &sign(whatsapp, &wa_id, &whatsapp.secrets, msg.to_string().as_bytes(), now).await).await.status(),
        200
    );

    // Typeform response with the email.
    let form = json!({"event_id": "01HZTF0001", "event_type": "form_response", "form_response": {"form_id": "lT4Z3j", "token": "a3a12ec67a1365927098a606107fac15",
        "submitted_at": "2025-05-04T10:00:00Z", "landed_at": "2025-05-04T09:59:00Z",
        "definition": {"id": "lT4Z3j", "title": "Feedback", "fields": [{"id": "em1", "ref": "email", "type": "email", "title": "Your email"}, {"id": "sc1", "ref": "score", "type": "opinion_scale", "title": "How likely…"}]},
        "answers": [{"type": "email", "email": "Lena.Berg@acme.io", "field": {"id": "em1", "type": "email", "ref": "email"}},
                    {"type": "number", "number": 9, "field": {"id": "sc1", "type": "opinion_scale", "ref": "score"}}]}});
    assert_eq!(
        send(&app, &sign(typeform, &tf_id, &typeform.secrets, form.to_string().as_bytes(), now).await).await.status(),
        200
    );

    for id in [&shop_id, &sq_id, &wa_id, &tf_id] {
        wait_processed(&app, id, 1).await;
    }
    let d = app
        .gql_ok(
            "{ customers { totalCount nodes { fullName email phone orders { total { amount currency } } events(first: 10) { edges { node { type source } } } identities { kind } } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["customers"]["totalCount"], 1, "one person: {d}");
    let c = &d["customers"]["nodes"][0];
    assert_eq!(c["email"], "lena.berg@acme.io");
    assert_eq!(c["phone"], "+4915112345678");
    assert_eq!(c["orders"][0]["total"], json!({"amount": "59.90", "currency": "EUR"}));
    let mut types: Vec<&str> =
        c["events"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, vec!["form_submitted", "message_received", "order_placed"], "{c}");
    let sources: Vec<&str> = c["identities"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert!(sources.contains(&"EMAIL") && sources.contains(&"PHONE") && sources.contains(&"EXTERNAL_ID"));
    // The POS customer record is on the timeline's identity list as its own external id.
    let sq = app.gql_ok("query($ns: String) { customerByIdentity(kind: EXTERNAL_ID, value: \"sq-cust-1\", namespace: $ns) { email } }", json!({"ns": sq_id})).await;
    assert_eq!(sq["customerByIdentity"]["email"], "lena.berg@acme.io");
}

/// Re-sign a Shopify request after changing its headers (the HMAC covers the body only).
fn resign_shopify(mut req: SignedRequest, secrets: &Value) -> SignedRequest {
    let fresh = testing::sign(ConnectorKind::Shopify, &secrets_of(secrets), &req.url, &req.body, Utc::now());
    let sig = fresh.header("x-shopify-hmac-sha256").unwrap().to_string();
    req.headers.retain(|(k, _)| k != "x-shopify-hmac-sha256");
    req.headers.push(("x-shopify-hmac-sha256".into(), sig));
    req
}

async fn shopify_privacy_topics_erase_and_record(app: TestApp) {
    let now = Utc::now();
    let all = platforms();
    let shopify = &all[0];
    let id = create_connector(&app, shopify.kind, "shop", &shopify.secrets, &shopify.config).await;
    let deliver = |topic: &'static str, body: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            let mut req = sign(shopify, &id, &shopify.secrets, body.to_string().as_bytes(), now).await;
            req.headers.retain(|(k, _)| k != "x-shopify-topic" && k != "x-shopify-event-id");
            req.headers.push(("x-shopify-topic".into(), topic.into()));
            req.headers.push(("x-shopify-event-id".into(), format!("{topic}-{}", body["id"])));
            let req = resign_shopify(req, &shopify.secrets);
            assert_eq!(send(app, &req).await.status(), 200, "{topic}");
        }
    };
    deliver(
        "customers/create",
        json!({"id": 7001, "email": "rita@acme.io", "first_name": "Rita", "updated_at": "2025-01-01T00:00:00Z"}),
    )
    .await;
    deliver(
        "customers/create",
        json!({"id": 7002, "email": "sam@acme.io", "first_name": "Sam", "updated_at": "2025-01-01T00:00:00Z"}),
    )
    .await;
    wait_processed(&app, &id, 2).await;
    let found = app.gql_ok("{ customerByIdentity(kind: EMAIL, value: \"rita@acme.io\") { id } }", json!({})).await;
    let rita = found["customerByIdentity"]["id"].as_str().unwrap().to_string();

    deliver("customers/data_request", json!({"id": 1, "shop_id": 9, "shop_domain": "s.myshopify.com", "customer": {"id": 7001, "email": "rita@acme.io"}, "orders_requested": [], "data_request": {"id": 9999}})).await;
    wait_processed(&app, &id, 3).await;
    let d = app
        .gql_ok("query($id: ID!) { customer(id: $id) { events { edges { node { type } } } } }", json!({"id": rita}))
        .await;
    assert_eq!(d["customer"]["events"]["edges"][0]["node"]["type"], "privacy_data_request", "{d}");

    deliver("customers/redact", json!({"id": 2, "shop_id": 9, "shop_domain": "s.myshopify.com", "customer": {"id": 7001, "email": "rita@acme.io"}, "orders_to_redact": []})).await;
    wait_processed(&app, &id, 4).await;
    let d = app.gql_ok("query($id: ID!) { customer(id: $id) { id } }", json!({"id": rita})).await;
    assert!(d["customer"].is_null(), "customers/redact erased the person");
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 1, "the other customer stays");

    deliver("shop/redact", json!({"id": 3, "shop_id": 9, "shop_domain": "s.myshopify.com"})).await;
    wait_processed(&app, &id, 5).await;
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 0, "shop/redact erased what the shop brought");
}

both_backends!(concurrent_deliveries_and_retries_are_stored_once_each);
// The workers are off, so the test decides when events are processed.
crate::both_backends_with!(|c: &mut junction::config::Config| c.ingest.workers = 0;
    a_batch_commits_good_events_and_leaves_failed_or_stolen_ones_alone);

fn contact(n: usize) -> Vec<u8> {
    json!({"type": "contact.created", "timestamp": "2025-01-01T00:00:00Z",
           "data": {"id": format!("ct_{n}"), "email": format!("batch{n}@acme.io"), "first_name": format!("Batch{n}")}})
    .to_string()
    .into_bytes()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let row = db.query_one(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    db.close().await.ok();
    n
}

/// Deliveries arriving together share a group commit: every one is answered 2xx, platform
/// retries racing their original (possibly in the same batch) are stored once and have one
/// effect.
async fn concurrent_deliveries_and_retries_are_stored_once_each(app: TestApp) {
    let now = Utc::now();
    let all = platforms();
    let std = &all[10];
    let id = create_connector(&app, std.kind, "group", &std.secrets, &std.config).await;
    let mut requests = Vec::new();
    for n in 0..40 {
        requests.push(sign(std, &id, &std.secrets, &contact(n), now).await);
    }
    // The first ten are each delivered three times at once.
    let mut sends: Vec<SignedRequest> = requests.clone();
    for _ in 0..2 {
        sends.extend(requests[..10].iter().cloned());
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for req in sends {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { send(&app, &req).await.status().as_u16() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let s = wait_processed(&app, &id, 40).await;
    assert_eq!(inbox_total(&s), 40, "each event stored once: {s}");
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 40, "one customer per event, none doubled");
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM source_records").await, 40);
}

/// One transaction for several events: an event that cannot be parsed and an event whose
/// lease another worker took are rolled back alone; the others commit. The stolen event is
/// then refused to its stale holder, so it is never applied twice.
async fn a_batch_commits_good_events_and_leaves_failed_or_stolen_ones_alone(app: TestApp) {
    use junction::ingest::pipeline::{process, process_batch, BatchOutcome};
    let now = Utc::now();
    let all = platforms();
    let std = &all[10];
    let id = create_connector(&app, std.kind, "batch", &std.secrets, &std.config).await;
    for n in 0..5 {
        assert_eq!(send(&app, &sign(std, &id, &std.secrets, &contact(n), now).await).await.status(), 200);
    }
    assert_eq!(send(&app, &sign(std, &id, &std.secrets, b"not json at all", now).await).await.status(), 200);

    let mut rows = app.state.store.lease_inbox(64, Duration::seconds(60)).await.unwrap();
    assert_eq!(rows.len(), 6);
    rows.sort_by_key(|r| r.body.clone());
    let stolen = rows.iter().position(|r| r.body == contact(2)).unwrap();
    let bad = rows.iter().position(|r| r.body == b"not json at all").unwrap();
    // Another worker leased event 2 after our lease expired: the token changed.
    {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let db = Database::connect(app.database_url.as_str()).await.unwrap();
        let sql = format!(
            "UPDATE inbox SET leased_until = next_attempt_at WHERE event_id = '{}'",
            rows[stolen].event_id.replace('\'', "")
        );
        db.execute(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        db.close().await.ok();
    }
    let cid = junction::ids::ConnectorId::parse(&id).unwrap();
    let live = app.state.connectors.get(&app.state.store, &app.state.cipher, cid).await.unwrap().unwrap();
    let items: Vec<_> = rows.iter().map(|r| (live.clone(), r.clone())).collect();
    let outcomes = process_batch(&app.state, &items, std::time::Duration::from_secs(30)).await;
    assert_eq!(outcomes.len(), 6);
    for (i, o) in outcomes.iter().enumerate() {
        let expect_applied = i != stolen && i != bad;
        assert_eq!(matches!(o, BatchOutcome::Applied(_)), expect_applied, "row {i}: {o:?}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM inbox WHERE status = 'processed'").await, 4);
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM source_records").await, 4, "only the good events applied");
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 4);

    // Run alone by its stale holder, the stolen event is refused and changes nothing.
    assert!(process(&app.state, &live, &rows[stolen]).await.is_err());
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM source_records").await, 4);
    // Its current holder still can: nothing of it was committed by the batch.
    let mut current = rows[stolen].clone();
    current.leased_until = Some(current.next_attempt_at);
    process(&app.state, &live, &current).await.unwrap();
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM source_records").await, 5);
}

mod batch_equals_one_by_one {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::batch_equals_one_by_one(crate::helpers::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::batch_equals_one_by_one(crate::helpers::Backend::Postgres).await;
    }
}

/// The deliveries of [`batch_equals_one_by_one`], in the order they are applied: orders
/// attaching to customers, orders updated out of order (an older version must not win), a
/// merge that absorbs the customer of earlier events of the same batch (with their orders and
/// events), an erasure in the middle (privacy events are applied on their own) and a segment
/// after it that the bulk path applies.
fn batch_deliveries() -> Vec<(&'static str, Value)> {
    let order_fixture: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/connectors/src/shopify/fixtures/orders_create.json"
    )))
    .unwrap();
    let order = |id: u64, email: Option<&str>, phone: Option<&str>, updated: &str, status: &str| {
        let mut o = order_fixture.clone();
        o["id"] = json!(id);
        o["name"] = json!(format!("#{id}"));
        o["email"] = json!(email);
        o["contact_email"] = json!(email);
        o["phone"] = json!(phone);
        o["updated_at"] = json!(updated);
        o["financial_status"] = json!(status);
        // No customer object: the order's person is its email and phone only, so it can
        // attach to, or merge, customers known by either.
        o.as_object_mut().unwrap().remove("customer");
        for a in ["billing_address", "shipping_address"] {
            if let Some(addr) = o.get_mut(a) {
                addr["phone"] = json!(phone);
                addr["first_name"] = json!("Ann");
                addr["last_name"] = json!("Lee");
            }
        }
        o
    };
    let customer = |id: u64, email: Option<&str>, phone: Option<&str>, name: &str| json!({"id": id, "email": email, "phone": phone, "first_name": name, "last_name": "Lee", "updated_at": "2025-01-01T00:00:00Z"});
    vec![
        ("customers/create", customer(101, Some("ann@acme.io"), None, "Ann")),
        ("orders/create", order(9001, Some("ann@acme.io"), None, "2025-02-02T00:00:00Z", "paid")),
        ("orders/updated", order(9001, Some("ann@acme.io"), None, "2025-02-01T00:00:00Z", "pending")),
        ("orders/create", order(9002, None, Some("+16178670100"), "2025-02-03T00:00:00Z", "paid")),
        ("orders/updated", order(9002, None, Some("+16178670100"), "2025-02-04T00:00:00Z", "fulfilled")),
        // Email and phone together: merges the two customers above, in the same batch.
        ("orders/create", order(9005, Some("ann@acme.io"), Some("+16178670100"), "2025-02-05T00:00:00Z", "paid")),
        ("orders/updated", order(9001, Some("ann@acme.io"), None, "2025-02-06T00:00:00Z", "refunded")),
        ("customers/create", customer(104, Some("zed@acme.io"), None, "Zed")),
        (
            "customers/redact",
            json!({"id": 2, "shop_id": 9, "shop_domain": "s.myshopify.com", "customer": {"id": 104, "email": "zed@acme.io"}, "orders_to_redact": []}),
        ),
        // After the erasure, a segment applied on the bulk path.
        ("customers/create", customer(105, Some("kim@acme.io"), None, "Kim")),
        ("orders/create", order(9003, Some("kim@acme.io"), None, "2025-02-03T00:00:00Z", "paid")),
        ("orders/updated", order(9003, Some("kim@acme.io"), None, "2025-02-02T00:00:00Z", "pending")),
        ("orders/updated", order(9003, Some("kim@acme.io"), None, "2025-02-07T00:00:00Z", "refunded")),
        ("orders/create", order(9004, Some("lou@acme.io"), None, "2025-02-03T00:00:00Z", "paid")),
    ]
}

/// What a user can see of the outcome, independent of generated ids: each customer as its
/// sorted identities, orders and timeline events by owner, merges.
async fn outcome_snapshot(app: &TestApp) -> Value {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let b = db.get_database_backend();
    // Ids as text: SQLite stores them as blobs.
    let id_text = |col: &str| {
        if app.backend == crate::helpers::Backend::Postgres {
            format!("CAST({col} AS TEXT)")
        } else {
            format!("hex({col})")
        }
    };
    let rows = |sql: &str| {
        Statement::from_string(
            b,
            sql.replace("ID_OF_CUSTOMER", &id_text("customer_id")).replace("ID_OF_C", &id_text("c.id")),
        )
    };
    let mut owner: std::collections::HashMap<String, String> = Default::default();
    let idents = db
        .query_all(rows(
            "SELECT ID_OF_C AS c, i.kind || ':' || i.value AS k FROM customers c \
             JOIN identities i ON i.customer_id = c.id WHERE c.merged_into IS NULL ORDER BY 2",
        ))
        .await
        .unwrap();
    let mut by_customer: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in &idents {
        by_customer.entry(r.try_get::<String>("", "c").unwrap()).or_default().push(r.try_get("", "k").unwrap());
    }
    for (c, keys) in &by_customer {
        owner.insert(c.clone(), keys.join(","));
    }
    let who = |c: String| owner.get(&c).cloned().unwrap_or_else(|| format!("absent {c}"));
    let mut orders: Vec<String> = Vec::new();
    for r in db.query_all(rows("SELECT ID_OF_CUSTOMER AS c, external_id AS e, status AS s FROM orders")).await.unwrap()
    {
        let s: Option<String> = r.try_get("", "s").unwrap();
        orders.push(format!("{} {:?} {}", r.try_get::<String>("", "e").unwrap(), s, who(r.try_get("", "c").unwrap())));
    }
    orders.sort();
    let mut events: Vec<String> = Vec::new();
    for r in db.query_all(rows("SELECT ID_OF_CUSTOMER AS c, kind AS k FROM events")).await.unwrap() {
        events.push(format!("{} {}", r.try_get::<String>("", "k").unwrap(), who(r.try_get("", "c").unwrap())));
    }
    events.sort();
    let one = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(rows(sql)).await.unwrap().unwrap().try_get::<i64>("", "n").unwrap() }
    };
    let snapshot = json!({
        "customers": by_customer.values().map(|k| k.join(",")).collect::<std::collections::BTreeSet<_>>(),
        "orders": orders,
        "events": events,
        "merges": one("SELECT COUNT(*) AS n FROM merges").await,
        "source_records": one("SELECT COUNT(*) AS n FROM source_records").await,
        "processed": one("SELECT COUNT(*) AS n FROM inbox WHERE status = 'processed'").await,
    });
    db.close().await.ok();
    snapshot
}

/// Store the deliveries in `app` (workers off) and lease them, in delivery order.
async fn leased_deliveries(
    app: &TestApp,
) -> Vec<(std::sync::Arc<junction::ingest::runtime::LiveConnector>, junction::store::entities::inbox::Model)> {
    let all = platforms();
    let shopify = &all[0];
    let id = create_connector(app, shopify.kind, "shop", &shopify.secrets, &shopify.config).await;
    let deliveries = batch_deliveries();
    for (n, (topic, body)) in deliveries.iter().enumerate() {
        let mut req = sign(shopify, &id, &shopify.secrets, body.to_string().as_bytes(), Utc::now()).await;
        req.headers.retain(|(k, _)| k != "x-shopify-topic" && k != "x-shopify-event-id");
        req.headers.push(("x-shopify-topic".into(), (*topic).into()));
        req.headers.push(("x-shopify-event-id".into(), format!("{n:03}")));
        let req = resign_shopify(req, &shopify.secrets);
        assert_eq!(send(app, &req).await.status(), 200, "{topic}");
    }
    let mut rows = app.state.store.lease_inbox(64, Duration::seconds(60)).await.unwrap();
    assert_eq!(rows.len(), deliveries.len());
    rows.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let cid = junction::ids::ConnectorId::parse(&id).unwrap();
    let live = app.state.connectors.get(&app.state.store, &app.state.cipher, cid).await.unwrap().unwrap();
    rows.into_iter().map(|r| (live.clone(), r)).collect()
}

/// Events applied together in one batch (bulk identity resolution, orders folded in memory,
/// multi-row writes; a segment whose merge absorbs an earlier event's customer is rolled back
/// and applied one by one) end exactly as the same events applied one at a time.
async fn batch_equals_one_by_one(backend: crate::helpers::Backend) {
    use junction::ingest::pipeline::{process, process_batch, BatchOutcome};
    let no_workers = |c: &mut junction::config::Config| c.ingest.workers = 0;
    let Some(single) = crate::helpers::spawn_app_with(backend, no_workers).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let batched = crate::helpers::spawn_app_with(backend, no_workers).await.unwrap();

    for (live, row) in leased_deliveries(&single).await {
        process(&single.state, &live, &row).await.unwrap();
    }
    let items = leased_deliveries(&batched).await;
    let outcomes = process_batch(&batched.state, &items, std::time::Duration::from_secs(30)).await;
    assert_eq!(outcomes.len(), items.len());
    assert!(outcomes.iter().all(|o| matches!(o, BatchOutcome::Applied(_))), "{outcomes:?}");

    let expected = outcome_snapshot(&single).await;
    let got = outcome_snapshot(&batched).await;
    assert_eq!(got, expected);
    // What the sequence means, so the comparison cannot pass on two empty stores.
    assert_eq!(expected["merges"], 1, "{expected}");
    assert_eq!(expected["processed"], 14);
    let orders = expected["orders"].as_array().unwrap();
    for newest in ["9001 Some(\"refunded\")", "9002 Some(\"fulfilled\")", "9003 Some(\"refunded\")"] {
        assert!(orders.iter().any(|o| o.as_str().unwrap().starts_with(newest)), "{newest}: {expected}");
    }
    assert!(!expected.to_string().contains("zed@acme.io"), "the erased person is gone: {expected}");
}
