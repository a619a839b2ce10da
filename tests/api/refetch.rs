//! Re-fetch (Jotform): a delivery is only a notice; what is applied is what the platform's
//! API returns, and a submission the API does not confirm is dead-lettered, never applied.

use std::time::Duration;

use chrono::Utc;
use junction_connectors::ConnectorKind;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::TestApp;
use crate::webhooks::{create_connector, fixture, platforms, send, sign};

const API_KEY: &str = "3f1c0a9be2d84c7f";
const SUBMISSION: &str = "5934021877723456789";

/// Jotform's API is a local mock; its client retries quickly.
fn refetch_config(c: &mut junction::config::Config) {
    c.sync.allow_custom_hosts = true;
    c.sync.base_backoff_ms = 10;
    c.sync.max_backoff_ms = 50;
}

/// Jotform's API: the real submission (whose e-mail differs from what was posted), 404 for
/// any other id.
async fn jotform_api() -> MockServer {
    let server = MockServer::start().await;
    let mut real: Value = serde_json::from_slice(&fixture("jotform/fixtures/api_submission.json")).unwrap();
    real["content"]["answers"]["3"]["answer"] = json!("kenji@tanaka-bakery.jp");
    Mock::given(method("GET"))
        .and(path(format!("/submission/{SUBMISSION}")))
        .and(header("apikey", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(real))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"responseCode": 404, "message": "Submission not found"})),
        )
        .mount(&server)
        .await;
    server
}

async fn inbox(app: &TestApp, id: &str, status: &str) -> Vec<Value> {
    let d = app
        .gql_ok(
            "query($c: ID!, $s: InboxStatus) { inboxEvents(connectorId: $c, status: $s) { id attempts lastError } }",
            json!({"c": id, "s": status}),
        )
        .await;
    d["inboxEvents"].as_array().unwrap().clone()
}

async fn submissions_are_applied_as_the_api_returns_them(app: TestApp) {
    let server = jotform_api().await;
    let jot = platforms().into_iter().find(|p| p.kind == ConnectorKind::Jotform).unwrap();
    let mut secrets = jot.secrets.clone();
    secrets["api_key"] = json!(API_KEY);
    let config = json!({"refetch": true, "api_base": server.uri()});
    let id = create_connector(&app, ConnectorKind::Jotform, "forms", &secrets, &config).await;

    let now = Utc::now();
    let genuine = sign(&jot, &id, &secrets, &fixture("jotform/fixtures/submission_multipart.txt"), now).await;
    assert_eq!(send(&app, &genuine).await.status(), 200);
    // Someone who learnt the URL posts a submission Jotform never received.
    let raw = json!({"q3_email": "mallory@evil.example", "q1_name": {"first": "Mallory", "last": "M"}});
    let forged = serde_urlencoded::to_string([
        ("formID", "241587392013052"),
        ("submissionID", "111"),
        ("rawRequest", &raw.to_string()),
    ])
    .unwrap();
    let mut forged_req = sign(&jot, &id, &secrets, forged.as_bytes(), now).await;
    forged_req.headers.retain(|(k, _)| k != "content-type");
    forged_req.headers.push(("content-type".into(), "application/x-www-form-urlencoded".into()));
    assert_eq!(send(&app, &forged_req).await.status(), 200, "the token is right: accepted, not yet trusted");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (done, dead) = (inbox(&app, &id, "PROCESSED").await, inbox(&app, &id, "DEAD").await);
        if done.len() == 1 && dead.len() == 1 {
            assert_eq!(dead[0]["attempts"], 1, "an unconfirmed submission is not retried: {dead:?}");
            let error = dead[0]["lastError"].as_str().unwrap();
            assert!(error.contains("does not confirm"), "{error}");
            assert!(!error.contains("mallory") && !error.contains(API_KEY), "{error}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "processed {done:?}, dead {dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let d = app
        .gql_ok(
            "{ customers(first: 10) { totalCount nodes { givenName email events(first: 10) { edges { node { type properties } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["customers"]["totalCount"], 1, "{d}");
    let customer = &d["customers"]["nodes"][0];
    assert_eq!(customer["givenName"], "Kenji");
    assert_eq!(customer["email"], "kenji@tanaka-bakery.jp", "the API's answer, not the posted one: {d}");
    assert!(!d.to_string().contains("kenji.tanaka@example.jp") && !d.to_string().contains("Mallory"), "{d}");
    assert!(d.to_string().contains("How can we help?"), "answers carry the API's labels: {d}");
    server.verify().await;
}

async fn a_failing_api_is_retried_not_applied_from_the_delivery(app: TestApp) {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let jot = platforms().into_iter().find(|p| p.kind == ConnectorKind::Jotform).unwrap();
    let mut secrets = jot.secrets.clone();
    secrets["api_key"] = json!(API_KEY);
    let id = create_connector(
        &app,
        ConnectorKind::Jotform,
        "forms",
        &secrets,
        &json!({"refetch": true, "api_base": server.uri()}),
    )
    .await;
    let delivery = sign(&jot, &id, &secrets, &fixture("jotform/fixtures/submission_multipart.txt"), Utc::now()).await;
    assert_eq!(send(&app, &delivery).await.status(), 200);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let retrying = loop {
        let r = inbox(&app, &id, "RETRYING").await;
        if !r.is_empty() {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "never retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(retrying[0]["lastError"].as_str().unwrap().contains("re-fetch"), "{retrying:?}");
    let d = app.gql_ok("{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], 0, "nothing applied from the unconfirmed delivery");
}

crate::both_backends_with!(super::refetch_config;
    submissions_are_applied_as_the_api_returns_them,
    a_failing_api_is_retried_not_applied_from_the_delivery);
