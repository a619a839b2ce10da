//! Access control through HTTP: authentication, the role matrix over the whole schema,
//! masking of personal data, limits, the audit log, consents, export and erasure.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{error_code, spawn_app_with, Backend, TestApp};

both_backends!(
    requests_need_a_live_key,
    every_root_field_against_every_role,
    personal_data_is_masked_without_pii,
    query_limits_refuse_abuse,
    consents_merge_to_the_most_restrictive,
    consents_merge_to_the_most_restrictive_in_a_bulk_batch,
    export_and_erasure_remove_the_person_everywhere,
    audit_log_records_admin_actions,
);

async fn create_key(app: &TestApp, role: &str) -> (String, String) {
    let d = app
        .gql_ok(
            "mutation($r: ApiRole!) { createApiKey(name: \"t\", role: $r) { key apiKey { id prefix role } } }",
            json!({"r": role}),
        )
        .await;
    let c = &d["createApiKey"];
    assert!(c["key"].as_str().unwrap().starts_with(c["apiKey"]["prefix"].as_str().unwrap()));
    (c["key"].as_str().unwrap().to_string(), c["apiKey"]["id"].as_str().unwrap().to_string())
}

async fn requests_need_a_live_key(app: TestApp) {
    let r = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": "{ customers { totalCount } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body).0, "UNAUTHENTICATED");
    let body =
        app.gql_as("jk_not_a_real_key_000000000000000000000000", "{ customers { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body).0, "UNAUTHENTICATED");

    let (key, id) = create_key(&app, "VIEWER").await;
    let ok = app.gql_as(&key, "{ customers { totalCount } }", json!({})).await;
    assert_eq!(ok["data"]["customers"]["totalCount"], 0, "{ok}");
    let keys = app.gql_ok("{ apiKeys { id role revokedAt } }", json!({})).await;
    assert!(keys["apiKeys"].as_array().unwrap().iter().any(|k| k["id"] == id.as_str() && k["role"] == "viewer"));
    app.gql_ok("mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }", json!({"id": id})).await;
    let body = app.gql_as(&key, "{ customers { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body).0, "UNAUTHENTICATED", "a revoked key stops working");
    // Health and metrics stay open (documented); webhooks authenticate by signature.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

/// The intended matrix: which roles may use each root field. A new root field must be added
/// here, or this test fails.
fn intended(op: &str, field: &str) -> &'static [&'static str] {
    const ALL_READ: &[&str] = &["admin", "editor", "viewer"];
    const WRITE: &[&str] = &["admin", "editor"];
    const INGEST: &[&str] = &["admin", "editor", "ingest"];
    const ADMIN: &[&str] = &["admin"];
    match (op, field) {
        ("query", "customer" | "customers" | "customerByIdentity" | "explainMatch" | "mergeCandidates") => ALL_READ,
        ("subscription", "customerChanged") => ALL_READ,
        ("mutation", "upsertCustomer" | "addEvent" | "setConsent") => INGEST,
        ("mutation", "updateCustomer" | "deleteCustomer") | ("query", "previewMerge") => WRITE,
        (
            "query",
            "connectorKinds" | "connectors" | "connector" | "inboxEvents" | "apiKeys" | "auditLog" | "exportCustomer",
        ) => ADMIN,
        (
            "mutation",
            "createConnector"
            | "updateConnector"
            | "rotateConnectorSecret"
            | "disableConnector"
            | "enableConnector"
            | "deleteConnector"
            | "replayEvent"
            | "replayDeadLetters"
            | "createApiKey"
            | "revokeApiKey"
            | "eraseCustomer"
            | "mergeCustomers"
            | "unmergeCustomer"
            | "resolveMergeCandidate",
        ) => ADMIN,
        ("query", f) | ("mutation", f) | ("subscription", f) if f.starts_with("sync") || f.contains("Sync") => ADMIN,
        _ => panic!("root field {op}.{field} is not in the intended access matrix"),
    }
}

async fn every_root_field_against_every_role(app: TestApp) {
    let schema = app
        .gql_ok(
            "{ __schema { queryType { fields { name } } mutationType { fields { name } } subscriptionType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mut keys = vec![("admin".to_string(), crate::helpers::ADMIN_KEY.to_string())];
    for role in ["EDITOR", "VIEWER", "INGEST"] {
        keys.push((role.to_lowercase(), create_key(&app, role).await.0));
    }
    let mut checked = 0;
    for (op, ty) in [("query", "queryType"), ("mutation", "mutationType"), ("subscription", "subscriptionType")] {
        for f in schema["__schema"][ty]["fields"].as_array().unwrap() {
            let field = f["name"].as_str().unwrap();
            let allowed = intended(op, field);
            for (role, key) in &keys {
                // The guard runs before validation, so a bare selection is enough to probe it.
                let body = app.gql_as(key, &format!("{op} {{ {field} }}"), json!({})).await;
                let forbidden = error_code(&body).0 == "FORBIDDEN";
                assert_eq!(!forbidden, allowed.contains(&role.as_str()), "{role} on {op}.{field}: {body}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * 25, "walked {checked} (role, field) pairs");
    // Fragments cannot smuggle a forbidden field past the guard.
    let (viewer, _) = create_key(&app, "VIEWER").await;
    let body = app.gql_as(&viewer, "query { ...F } fragment F on QueryRoot { apiKeys { id } }", json!({})).await;
    assert_eq!(error_code(&body).0, "FORBIDDEN", "{body}");
}

async fn personal_data_is_masked_without_pii(app: TestApp) {
    app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "mira.kovac@acme.io"}, {"kind": "PHONE", "value": "+385912345678"}],
                      "givenName": "Mira", "address": {"line1": "Ilica 1", "city": "Zagreb", "postcode": "10000", "country": "HR"}}))
        .await;
    let q = "{ customers { nodes { givenName email phone addresses { line1 city postcode } identities { kind value raw } } } }";
    let (viewer, _) = create_key(&app, "VIEWER").await;
    let (editor, _) = create_key(&app, "EDITOR").await;
    let masked = app.gql_as(&viewer, q, json!({})).await;
    let text = masked.to_string();
    assert!(!text.contains("mira.kovac") && !text.contains("912345678") && !text.contains("Ilica"), "{text}");
    let c = &masked["data"]["customers"]["nodes"][0];
    assert_eq!(c["email"], "m***@acme.io");
    assert_eq!(c["givenName"], "Mira");
    assert_eq!(c["addresses"][0]["city"], "Zagreb");
    let clear = app.gql_as(&editor, q, json!({})).await;
    assert_eq!(clear["data"]["customers"]["nodes"][0]["email"], "mira.kovac@acme.io");
    // An ingest key can send data in but not read it back.
    let (ingest, _) = create_key(&app, "INGEST").await;
    let sent = app
        .gql_as(&ingest, "mutation { upsertCustomer(input: {identities: [{kind: EMAIL, value: \"ivo@acme.io\"}]}) { created customer { email } } }", json!({}))
        .await;
    assert_eq!(sent["data"]["upsertCustomer"]["created"], true, "{sent}");
    assert_eq!(sent["data"]["upsertCustomer"]["customer"]["email"], "i***@acme.io");
    let body = app.gql_as(&ingest, "{ customers { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body).0, "FORBIDDEN");
}

async fn query_limits_refuse_abuse(app: TestApp) {
    // Complexity: list fields weigh by `first`.
    let heavy = "{ customers(first: 100) { edges { node { events(first: 100) { edges { node { id type source properties occurredAt } } } } } } }";
    let body = app.gql(heavy, json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("complex"), "{body}");
    // Depth.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(14),
        "} ".repeat(14)
    );
    let body = app.gql(&deep, json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("nested too deep"), "{body}");
    // Alias flood.
    let flood: String = (0..40).map(|i| format!("a{i}: customers {{ totalCount }} ")).collect();
    let body = app.gql(&format!("{{ {flood} }}"), json!({})).await;
    assert_eq!(error_code(&body).0, "VALIDATION", "{body}");
    // Batches are refused.
    let r = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(crate::helpers::ADMIN_KEY)
        .json(&json!([{"query": "{ customers { totalCount } }"}, {"query": "{ customers { totalCount } }"}]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "batch answered {}", r.status());

    // Per-key rate limit, and the production profile.
    let limited = spawn_app_with(app.backend, |c| {
        c.graphql.rate_limit_per_second = 1;
        c.graphql.rate_limit_burst = 2;
        c.profile = junction::config::Profile::Production;
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let r = limited
            .client
            .post(limited.url("/graphql"))
            .bearer_auth(crate::helpers::ADMIN_KEY)
            .json(&json!({"query": "{ customers { totalCount } }"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert_eq!(statuses[3], 429, "{statuses:?}");
    assert!(retry_after.is_some());
    let body = limited.gql("{ __schema { types { name } } }", json!({})).await;
    assert!(body.get("errors").is_some(), "introspection is off in production: {body}");
    assert_eq!(limited.client.get(limited.url("/graphql")).send().await.unwrap().status(), 404);
}

async fn consents_merge_to_the_most_restrictive(app: TestApp) {
    consents_merge(app, false).await;
}

/// The same merge made by a bulk batch (an import), which reads consents only for the
/// customers that hold some.
async fn consents_merge_to_the_most_restrictive_in_a_bulk_batch(app: TestApp) {
    consents_merge(app, true).await;
}

async fn consents_merge(app: TestApp, bulk: bool) {
    let a = app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "noor@acme.io"}]})).await["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = app.upsert(json!({"identities": [{"kind": "PHONE", "value": "+31612345678"}]})).await["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let set = "mutation($c: ID!, $p: String!, $ch: String!, $g: Boolean!) { setConsent(customerId: $c, purpose: $p, channel: $ch, granted: $g, source: \"form\") { purpose channel granted } }";
    app.gql_ok(set, json!({"c": a, "p": "marketing", "ch": "email", "g": true})).await;
    app.gql_ok(set, json!({"c": a, "p": "marketing", "ch": "sms", "g": true})).await;
    app.gql_ok(set, json!({"c": b, "p": "marketing", "ch": "email", "g": false})).await;
    app.gql_ok(set, json!({"c": b, "p": "analytics", "ch": "web", "g": true})).await;
    let body = app.gql(set, json!({"c": a, "p": "bad purpose!", "ch": "email", "g": true})).await;
    assert_eq!(error_code(&body), ("VALIDATION".into(), "purpose".into()));
    // Link the two: one person.
    if bulk {
        use junction::identity::{IdentityKind, Observation, RawIdentifier, SourceRef};
        let raw = |kind, value: &str| RawIdentifier { kind, namespace: None, value: value.into() };
        let obs = Observation {
            source: SourceRef { source: "import".into(), connector_id: None, namespace: "shop".into(), inbox_id: None },
            record_id: Some("link".into()),
            record_kind: "customer".into(),
            identifiers: vec![raw(IdentityKind::Email, "noor@acme.io"), raw(IdentityKind::Phone, "+31 6 12345678")],
            profile: Default::default(),
            traits: Default::default(),
            tags: vec![],
            occurred_at: None,
        };
        let extractor = &app.state.extractor;
        let item = junction::store::BulkItem::new(extractor, obs, None);
        let out = app.state.store.ingest_bulk(extractor, &mut [item]).await.unwrap();
        assert_eq!(out[0].merged.len(), 1);
    } else {
        let linked = app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "noor@acme.io"}, {"kind": "PHONE", "value": "+31 6 12345678"}]})).await;
        assert_eq!(linked["mergedIds"].as_array().unwrap().len(), 1);
    }
    let d = app
        .gql_ok(
            "query($id: ID!) { customer(id: $id) { consents { purpose channel granted source } } }",
            json!({"id": a}),
        )
        .await;
    let consents = d["customer"]["consents"].as_array().unwrap();
    let get = |p: &str, ch: &str| {
        consents.iter().find(|c| c["purpose"] == p && c["channel"] == ch).map(|c| c["granted"].clone())
    };
    assert_eq!(get("marketing", "email"), Some(json!(false)), "denied wins: {consents:?}");
    assert_eq!(get("marketing", "sms"), Some(json!(true)));
    assert_eq!(get("analytics", "web"), Some(json!(true)));
}

async fn export_and_erasure_remove_the_person_everywhere(app: TestApp) {
    use chrono::Utc;
    use junction_connectors::ConnectorKind;
    let all = crate::webhooks::platforms();
    let std = all.iter().find(|p| p.kind == ConnectorKind::StandardWebhooks).unwrap();
    let conn = crate::webhooks::create_connector(&app, std.kind, "std", &std.secrets, &std.config).await;
    let body = json!({"type": "contact.created", "timestamp": "2025-06-01T00:00:00Z", "data": {"id": "ct_9", "email": "erase.me@acme.io", "first_name": "Erin"}});
    let req = crate::webhooks::sign(std, &conn, &std.secrets, body.to_string().as_bytes(), Utc::now()).await;
    assert_eq!(crate::webhooks::send(&app, &req).await.status(), 200);
    crate::webhooks::wait_processed(&app, &conn, 1).await;
    let id = app.upsert(json!({"identities": [{"kind": "EMAIL", "value": "erase.me@acme.io"}, {"kind": "PHONE", "value": "+447911123456"}], "givenName": "Erin", "familyName": "Doe"})).await
        ["customer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.gql_ok("mutation($id: ID!) { addEvent(customerId: $id, input: {type: \"visit\"}) { id } }", json!({"id": id}))
        .await;
    app.gql_ok("mutation($id: ID!) { setConsent(customerId: $id, purpose: \"marketing\", channel: \"email\", granted: true) { granted } }", json!({"id": id})).await;

    let export =
        app.gql_ok("query($id: ID!) { exportCustomer(id: $id) }", json!({"id": id})).await["exportCustomer"].clone();
    assert_eq!(export["customer"]["email"], "erase.me@acme.io", "{export}");
    assert_eq!(export["identities"].as_array().unwrap().len(), 3, "email, phone, platform id: {export}");
    assert_eq!(export["events"].as_array().unwrap().len(), 1);
    assert_eq!(export["consents"].as_array().unwrap().len(), 1);
    assert_eq!(export["sourceRecords"].as_array().unwrap().len(), 2);

    let r = app.gql_ok("mutation($id: ID!) { eraseCustomer(id: $id) { customerId counts } }", json!({"id": id})).await;
    assert_eq!(r["eraseCustomer"]["customerId"], id.as_str());
    assert_eq!(r["eraseCustomer"]["counts"]["identities"], 3);
    assert_eq!(r["eraseCustomer"]["counts"]["webhookPayloads"], 1);
    let d = app.gql_ok("query($id: ID!) { customer(id: $id) { id } }", json!({"id": id})).await;
    assert!(d["customer"].is_null());

    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let b = db.get_database_backend();
    for table in ["customers", "identities", "events", "orders", "source_records", "consents"] {
        let row = db
            .query_one(Statement::from_string(b, format!("SELECT COUNT(*) AS n FROM {table}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "{table} still holds rows");
    }
    let rows = db.query_all(Statement::from_string(b, "SELECT * FROM inbox")).await.unwrap();
    let rows2 = db.query_all(Statement::from_string(b, "SELECT * FROM audit_log")).await.unwrap();
    let rows3 = db.query_all(Statement::from_string(b, "SELECT * FROM merges")).await.unwrap();
    let dump = format!("{rows:?}{rows2:?}{rows3:?}");
    for needle in ["erase.me", "Erin", "7911123456", "Doe"] {
        assert!(!dump.contains(needle), "`{needle}` survived erasure");
    }
    let audit = app.gql_ok("{ auditLog { action target } }", json!({})).await;
    let actions: Vec<&str> =
        audit["auditLog"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"customer.erase") && actions.contains(&"customer.export"), "{actions:?}");
}

async fn audit_log_records_admin_actions(app: TestApp) {
    let (_, key_id) = create_key(&app, "VIEWER").await;
    app.gql_ok("mutation($id: ID!) { revokeApiKey(id: $id) { id } }", json!({"id": key_id})).await;
    let d = app.gql_ok("{ auditLog(first: 10) { id action target actor hash } }", json!({})).await;
    let log = d["auditLog"].as_array().unwrap();
    assert_eq!(log[0]["action"], "api_key.revoke");
    assert_eq!(log[0]["target"], key_id.as_str());
    assert!(log[0]["actor"].as_str().unwrap().starts_with("key:key_"));
    assert_eq!(log[1]["action"], "api_key.create");
    assert!(log[0]["id"].as_i64().unwrap() > log[1]["id"].as_i64().unwrap());
    let (viewer, _) = create_key(&app, "VIEWER").await;
    let body = app.gql_as(&viewer, "{ auditLog { id } }", json!({})).await;
    assert_eq!(error_code(&body).0, "FORBIDDEN");
    let _ = Backend::Sqlite;
}

/// A query blocked past `graphql.timeout_secs` is answered with TIMEOUT. PostgreSQL only:
/// an exclusive table lock held by another session makes the block deterministic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_queries_time_out_postgres() {
    let Some(app) = spawn_app_with(Backend::Postgres, |c| c.graphql.timeout_secs = 1).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let tx = db.begin().await.unwrap();
    tx.execute_unprepared("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let started = std::time::Instant::now();
    let body = app.gql("{ customers { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body).0, "TIMEOUT", "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    tx.rollback().await.unwrap();
    let body = app.gql("{ customers { totalCount } }", json!({})).await;
    assert_eq!(body["data"]["customers"]["totalCount"], 0, "{body}");
}
