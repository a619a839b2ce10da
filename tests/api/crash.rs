//! Nothing lost, nothing doubled: 10,000 signed deliveries (5 % of them platform retries)
//! into a server that is SIGKILLed twice mid-stream. Every accepted event is processed
//! exactly once and no customer is duplicated.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::Utc;
use junction_connectors::{testing, ConnectorKind, Secrets};
use serde_json::{json, Value};

use crate::helpers::{fresh_database, Backend};

const EVENTS: usize = 10_000;
const PEOPLE: usize = 2_500;
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn start(dir: &std::path::Path, url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_junction"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_DATA_DIR", dir)
        .env("DATABASE_URL", url)
        .env("JUNCTION_SECURITY__MASTER_KEY", MASTER_KEY)
        .env("JUNCTION_SERVER__PUBLIC_BASE_URL", "https://hub.example.test")
        .env("JUNCTION_INGEST__LEASE_SECS", "2")
        .env("JUNCTION_BOOTSTRAP_ADMIN_KEY", crate::helpers::ADMIN_KEY)
        .env("JUNCTION_LOG__FILTER", "error")
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start junction")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server not ready");
}

async fn gql(client: &reqwest::Client, base: &str, query: &str, vars: Value) -> Value {
    let body: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(crate::helpers::ADMIN_KEY)
        .json(&json!({"query": query, "variables": vars}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

fn body_for(i: usize) -> Vec<u8> {
    let person = i % PEOPLE;
    json!({"type": "contact.updated", "timestamp": "2025-06-01T00:00:00Z",
           "data": {"id": format!("ct_{person}"), "email": format!("person{person}@acme.io"), "first_name": format!("P{person}"), "seq": i}})
    .to_string()
    .into_bytes()
}

async fn kill_twice_and_count(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _pg)) = fresh_database(backend, dir.path()).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut child = start(dir.path(), &url, port);
    wait_ready(&client, &base).await;
    let d = gql(&client, &base, "mutation { createConnector(input: {kind: \"standard_webhooks\", name: \"load\", secrets: {secret: \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"}}) { id } }", json!({})).await;
    let id = d["createConnector"]["id"].as_str().unwrap().to_string();

    // 9,500 distinct events and 500 re-deliveries of earlier ones, in a fixed order.
    let distinct = EVENTS - EVENTS / 20;
    let order: Vec<usize> =
        (0..EVENTS).map(|k| if k % 20 == 19 { (k * 7919) % (k - k / 20) } else { k - k / 20 }).collect();
    let mut secrets = Secrets::default();
    secrets.current.insert("secret".into(), SECRET.into());
    let now = Utc::now();
    let requests: Arc<Vec<testing::SignedRequest>> = Arc::new(
        order
            .iter()
            .map(|i| {
                testing::sign(
                    ConnectorKind::StandardWebhooks,
                    &secrets,
                    &format!("https://hub.example.test/webhooks/{id}"),
                    &body_for(*i),
                    now,
                )
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (requests, next, done, client, base) =
            (requests.clone(), next.clone(), done.clone(), client.clone(), base.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= requests.len() {
                    return;
                }
                let req = &requests[k];
                let path = req.url.strip_prefix("https://hub.example.test").unwrap();
                // Like a platform: retry until a 2xx, whatever happens to the server.
                loop {
                    let mut r = client.post(format!("{base}{path}"));
                    for (h, v) in &req.headers {
                        r = r.header(h, v);
                    }
                    match r.body(req.body.clone()).timeout(std::time::Duration::from_secs(10)).send().await {
                        Ok(resp) if resp.status().is_success() => break,
                        Ok(resp) => assert!(resp.status().is_server_error(), "refused: {}", resp.status()),
                        Err(_) => {}
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for kill_at in [EVENTS * 3 / 10, EVENTS * 6 / 10] {
        while done.load(Ordering::SeqCst) < kill_at {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        child = start(dir.path(), &url, port);
        wait_ready(&client, &base).await;
    }
    for s in senders {
        s.await.unwrap();
    }

    // Wait for the inbox to drain.
    let q = "query($id: ID!) { connector(id: $id) { inboxCounts { status count } } }";
    let mut processed = 0;
    for _ in 0..1200 {
        let d = gql(&client, &base, q, json!({"id": id})).await;
        let counts = d["connector"]["inboxCounts"].as_array().unwrap().clone();
        let total: i64 = counts.iter().map(|c| c["count"].as_i64().unwrap()).sum();
        processed = counts.iter().filter(|c| c["status"] == "processed").map(|c| c["count"].as_i64().unwrap()).sum();
        assert_eq!(total, distinct as i64, "every distinct event stored once: {counts:?}");
        if processed == distinct as i64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(processed, distinct as i64, "every accepted event processed");
    let d = gql(&client, &base, "{ customers { totalCount } }", json!({})).await;
    assert_eq!(d["customers"]["totalCount"], PEOPLE, "no customer duplicated");
    child.kill().unwrap();
    child.wait().unwrap();

    // Exactly once: one source record per distinct event.
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(url.as_str()).await.unwrap();
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM source_records"))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    assert_eq!(n, distinct as i64, "each event applied exactly once");
    db.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_deliveries_two_crashes_sqlite() {
    kill_twice_and_count(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_deliveries_two_crashes_postgres() {
    kill_twice_and_count(Backend::Postgres).await;
}
