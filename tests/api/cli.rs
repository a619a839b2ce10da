//! The `junction` binary: import, export, schema, migrate, and graceful shutdown of serve.

use std::process::{Command, Stdio};

use crate::helpers::{fresh_database, pg_admin_url, Backend};

fn junction(dir: &std::path::Path, database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_DATA_DIR", dir)
        .env("DATABASE_URL", database_url)
        .env("JUNCTION_LOG__FILTER", "warn");
    cmd
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn import_and_export(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let out = junction(dir.path(), &url).args(["import", &fixture("people.jsonl")]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "import failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    // r1+r2+r3+r8 are one person (email, phone, stripe id); r4 and r5 are one each;
    // r6 (no identifier), the non-JSON line and r7 (bad timestamp) are rejected.
    assert!(stdout.contains("read 9 records: 3 created, 3 attached"), "{stdout}");
    assert!(stdout.contains("3 rejected"), "{stdout}");
    assert!(stdout.contains("no identifier"), "{stdout}");
    assert!(stdout.contains("occurred_at: not RFC 3339"), "{stdout}");
    assert!(stdout.contains("1 identifiers set aside"), "junk email is set aside: {stdout}");
    assert_eq!(wal_bytes(&url), 0, "the import leaves no WAL for the next process to replay");

    let out = junction(dir.path(), &url).args(["import", &fixture("people.csv")]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read 4 records: 2 created, 1 attached, 1 merges, 1 rejected"), "{stdout}");

    let export = dir.path().join("export.jsonl");
    let out = junction(dir.path(), &url).args(["export", "-o", export.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&export).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let gabriel = lines.iter().find(|l| l["email"] == "gabriel.lee@outlook.com").expect("merged person exported");
    let kinds: Vec<&str> =
        gabriel["identities"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "external_id").count(), 3, "{gabriel}");
    assert_eq!(gabriel["phone"], "+16172996030");
    assert_eq!(gabriel["traits"]["birthDate"], "1990-04-01");
    let maria = lines.iter().find(|l| l["email"] == "maria@acme.io").unwrap();
    assert_eq!(maria["phone"], "+15128670199");
    assert_eq!(maria["addresses"][0]["city"], "Austin");
}

#[tokio::test]
async fn import_and_export_sqlite() {
    import_and_export(Backend::Sqlite).await;
}

#[tokio::test]
async fn import_and_export_postgres() {
    import_and_export(Backend::Postgres).await;
}

/// An import longer than one chunk (10,000 records on SQLite, 5,000 on PostgreSQL): on
/// SQLite several chunks share a transaction, so a later chunk must find the customers an
/// earlier one created before they are committed, and the last, partial group must be
/// committed too.
async fn import_spanning_chunks(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    // 6,000 people, each seen twice 6,000 records apart: once by email, once by email and
    // an external id.
    let people = 6_000;
    let mut lines = String::new();
    for n in 0..2 * people {
        let p = n % people;
        let line = if n < people {
            serde_json::json!({"record_id": format!("a{n}"), "source": "shop", "email": format!("p{p}@proton.me")})
        } else {
            serde_json::json!({"record_id": format!("b{n}"), "source": "crm", "email": format!("P{p}@proton.me"),
                               "external_id": format!("crm-{p}")})
        };
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    let input = dir.path().join("people.jsonl");
    std::fs::write(&input, lines).unwrap();
    let out = junction(dir.path(), &url).args(["import", input.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "import failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("read 12000 records: 6000 created, 6000 attached, 0 merges"), "{stdout}");

    let export = dir.path().join("export.jsonl");
    let out = junction(dir.path(), &url).args(["export", "-o", export.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let customers: Vec<serde_json::Value> =
        std::fs::read_to_string(&export).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(customers.len(), people, "one customer per person, all committed");
    let last = customers.iter().find(|c| c["email"] == "p5999@proton.me").expect("the last person");
    let kinds: Vec<&str> = last["identities"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"external_id"), "the second sighting attached: {last}");
}

#[tokio::test]
async fn import_spanning_chunks_sqlite() {
    import_spanning_chunks(Backend::Sqlite).await;
}

#[tokio::test]
async fn import_spanning_chunks_postgres() {
    import_spanning_chunks(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = junction(dir.path(), "sqlite::memory:")
        .env("JUNCTION_SERVER__BODY_LIMIT_BYTES", "ten")
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.body_limit_bytes"), "{err}");
}

#[tokio::test]
async fn serve_drains_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("j.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = junction(dir.path(), &url)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            ready = r.status() == 200;
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "server did not become ready");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    assert!(exited.expect("exited after SIGTERM").success());
    assert_eq!(wal_bytes(&url), 0, "a stopped server leaves no WAL behind");
    let _ = pg_admin_url();
}

/// Size of the SQLite WAL file beside the database of `url` (0 when absent, or PostgreSQL).
fn wal_bytes(url: &str) -> u64 {
    let Some(path) = url.strip_prefix("sqlite://") else { return 0 };
    let db = path.split('?').next().unwrap_or(path);
    std::fs::metadata(format!("{db}-wal")).map(|m| m.len()).unwrap_or(0)
}

async fn tokens_and_audit_verification(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = junction(dir.path(), &app.database_url)
        .args(["token", "create", "--role", "editor", "--name", "ci"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(key.starts_with("jk_"), "the key is printed once: {key}");
    let body = app.gql_as(&key, "{ customers { totalCount } }", serde_json::json!({})).await;
    assert_eq!(body["data"]["customers"]["totalCount"], 0, "{body}");
    let body = app.gql_as(&key, "{ apiKeys { id } }", serde_json::json!({})).await;
    assert_eq!(crate::helpers::error_code(&body).0, "FORBIDDEN", "editors are not admins");
    // The key is stored hashed only.
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(app.database_url.as_str()).await.unwrap();
    let b = db.get_database_backend();
    let rows = db.query_all(Statement::from_string(b, "SELECT * FROM api_keys")).await.unwrap();
    assert!(!format!("{rows:?}").contains(&key[3..]), "a key is stored in clear");

    for i in 0..3 {
        app.gql_ok(
            &format!("mutation {{ createApiKey(name: \"k{i}\", role: VIEWER) {{ key }} }}"),
            serde_json::json!({}),
        )
        .await;
    }
    let verify = || junction(dir.path(), &app.database_url).args(["audit", "verify"]).output().unwrap();
    let out = verify();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 entries verified"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    db.execute(Statement::from_string(b, "UPDATE audit_log SET actor = 'someone-else' WHERE id = 2")).await.unwrap();
    let out = verify();
    assert!(!out.status.success(), "a changed row must be detected");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Altered"));
    db.execute(Statement::from_string(b, "DELETE FROM audit_log WHERE id >= 2")).await.unwrap();
    let out = verify();
    assert!(!out.status.success(), "deleted rows at the end of the chain must be detected");
    db.close().await.ok();
}

#[tokio::test]
async fn tokens_and_audit_verification_sqlite() {
    tokens_and_audit_verification(Backend::Sqlite).await;
}

#[tokio::test]
async fn tokens_and_audit_verification_postgres() {
    tokens_and_audit_verification(Backend::Postgres).await;
}

/// Run webhook and GraphQL flows with canary personal data and secrets, with debug logging,
/// and search everything the server logged: zero hits.
#[tokio::test]
async fn logs_carry_no_personal_data_or_secrets() {
    use chrono::Utc;
    use junction_connectors::{testing, ConnectorKind, Secrets};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("j.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = junction(dir.path(), &url)
        .env("JUNCTION_LOG__FILTER", "debug")
        .env("JUNCTION_BOOTSTRAP_ADMIN_KEY", crate::helpers::ADMIN_KEY)
        .env("JUNCTION_SERVER__PUBLIC_BASE_URL", "https://hub.example.test")
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().await.map(|r| r.status() == 200).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let gql = |q: String, v: serde_json::Value| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .post(format!("{base}/graphql"))
                .bearer_auth(crate::helpers::ADMIN_KEY)
                .json(&json!({"query": q, "variables": v}))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let canary_email = "canary.zxq@acme.io";
    let canary_phone = "+14158675309";
    let canary_name = "Quorzelda";
    let canary_secret = "whsec_Y2FuYXJ5c2VjcmV0Y2FuYXJ5c2VjcmV0MTIzNA==";
    let d = gql(format!("mutation {{ upsertCustomer(input: {{identities: [{{kind: EMAIL, value: \"{canary_email}\"}}, {{kind: PHONE, value: \"{canary_phone}\"}}], givenName: \"{canary_name}\"}}) {{ customer {{ id }} }} }}"), json!({})).await;
    let id = d["data"]["upsertCustomer"]["customer"]["id"].as_str().unwrap().to_string();
    gql("mutation($id: ID!) { addEvent(customerId: $id, input: {type: \"x\", properties: {note: \"Quorzelda\"}}) { id } }".into(), json!({"id": id})).await;
    gql(format!("{{ customers(filter: {{search: \"{canary_name}\"}}) {{ totalCount }} }}"), json!({})).await;
    gql("{ customer(id: \"garbage\") { id } }".into(), json!({})).await;
    let d = gql(format!("mutation {{ createConnector(input: {{kind: \"standard_webhooks\", name: \"c\", secrets: {{secret: \"{canary_secret}\"}}}}) {{ id }} }}"), json!({})).await;
    let cid = d["data"]["createConnector"]["id"].as_str().unwrap().to_string();
    let mut secrets = Secrets::default();
    secrets.current.insert("secret".into(), canary_secret.into());
    let body = json!({"type": "contact.created", "timestamp": "2025-01-01T00:00:00Z", "data": {"id": "ct_1", "email": canary_email, "first_name": canary_name, "phone": canary_phone}}).to_string();
    let send = |req: testing::SignedRequest| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let path = req.url.strip_prefix("https://hub.example.test").unwrap().to_string();
            let mut r = client.post(format!("{base}{path}"));
            for (k, v) in &req.headers {
                r = r.header(k, v);
            }
            r.body(req.body).send().await.unwrap().status()
        }
    };
    let url = format!("https://hub.example.test/webhooks/{cid}");
    assert_eq!(
        send(testing::sign(ConnectorKind::StandardWebhooks, &secrets, &url, body.as_bytes(), Utc::now())).await,
        200
    );
    let mut bad = testing::sign(ConnectorKind::StandardWebhooks, &secrets, &url, body.as_bytes(), Utc::now());
    bad.body.push(b' ');
    assert_eq!(send(bad).await, 401);
    let mut garbage = testing::sign(
        ConnectorKind::StandardWebhooks,
        &secrets,
        &url,
        format!("not json {canary_email}").as_bytes(),
        Utc::now(),
    );
    garbage.headers.retain(|(k, _)| k != "webhook-id");
    garbage.headers.push(("webhook-id".into(), "msg_garbage".into()));
    let resigned = testing::sign(ConnectorKind::StandardWebhooks, &secrets, &url, &garbage.body, Utc::now());
    let _ = send(resigned).await;
    gql(format!("mutation {{ eraseCustomer(id: \"{id}\") {{ customerId }} }}"), json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.lines().count() > 5, "debug logging produced output");
    for canary in [
        canary_email,
        "canary.zxq",
        canary_phone,
        "8675309",
        canary_name,
        canary_secret,
        "Y2FuYXJ5c2Vj",
        crate::helpers::ADMIN_KEY,
    ] {
        assert!(!logged.contains(canary), "`{canary}` appeared in the logs");
    }
}

/// Migration 8 adds `identities.key_hash` to a store that already holds identities: the
/// store is taken back to migration 7 (text keys only), `junction migrate` back-fills every
/// row's digest, and a second import of the same people finds all of them by it.
async fn key_hash_backfill(backend: Backend) {
    use junction_migrations::{identity_key_hash, Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Statement};
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let import = |file: &str| {
        let out = junction(dir.path(), &url).args(["import", &fixture(file)]).output().unwrap();
        assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(import("people.jsonl").contains("3 created"));

    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    // Migrations 9 and 8 undone: 9 gives the references to customers their immediate check back.
    Migrator::down(&db, Some(2)).await.expect("back to migration 7");
    let columns = if backend == Backend::Sqlite {
        "SELECT name FROM pragma_table_info('identities')"
    } else {
        "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'identities'"
    };
    let names: Vec<String> = db
        .query_all(Statement::from_string(db.get_database_backend(), columns))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    assert!(!names.contains(&"key_hash".to_string()), "{names:?}");

    let out = junction(dir.path(), &url).arg("migrate").output().unwrap();
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT kind, namespace, value, key_hash FROM identities",
        ))
        .await
        .unwrap();
    assert!(rows.len() >= 5, "{} identities", rows.len());
    for r in &rows {
        let (kind, namespace, value): (String, String, String) =
            (r.try_get("", "kind").unwrap(), r.try_get("", "namespace").unwrap(), r.try_get("", "value").unwrap());
        let stored: uuid::Uuid = r.try_get("", "key_hash").unwrap();
        assert_eq!(stored, identity_key_hash(&kind, &namespace, &value), "{kind} {value}");
    }
    db.close().await.unwrap();

    // The same people again: every accepted record is found by its back-filled key.
    let stdout = import("people.jsonl");
    assert!(stdout.contains("read 9 records: 0 created, 6 attached, 0 merges"), "{stdout}");
}

#[tokio::test]
async fn key_hash_backfill_sqlite() {
    key_hash_backfill(Backend::Sqlite).await;
}

#[tokio::test]
async fn key_hash_backfill_postgres() {
    key_hash_backfill(Backend::Postgres).await;
}
