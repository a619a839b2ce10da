//! Pull-sync benchmark (BENCHMARKS.md, "Pull sync").
//!
//! 1. Backfill of `SYNC_BENCH_CUSTOMERS` (default 100,000) customers from a mock Shopify
//!    with no rate limit, end to end into resolved customers: records/s.
//! 2. The same mock with a 2 requests/s quota for `SYNC_BENCH_LIMITED_SECS` (default 20)
//!    seconds: the requests-per-second histogram as the mock saw it.
//!
//! `cargo bench --bench sync_backfill` (SQLite in a temp dir; PostgreSQL when
//! `JUNCTION_TEST_DATABASE_URL` names a server: a fresh database is created and dropped).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use junction::config::Config;
use junction::ids::ConnectorId;
use junction::store::NewConnector;
use junction::sync::{prepare, SyncMode};
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Customers `1..=n`, `updated_at` one second apart, generated per page on demand.
#[derive(Clone)]
struct Shop {
    n: usize,
    base: String,
    requests: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Shop {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.requests.lock().unwrap().push(Instant::now());
        let q: BTreeMap<String, String> =
            req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
        let offset: usize = q.get("page_info").and_then(|p| p.parse().ok()).unwrap_or(0);
        let stream = if req.url.path().ends_with("orders.json") { "orders" } else { "customers" };
        let total = if stream == "orders" { 0 } else { self.n };
        let page: Vec<Value> = (offset..(offset + limit).min(total))
            .map(|i| {
                let id = i + 1;
                json!({
                    "id": id,
                    "email": format!("customer{id}@bench-shop.io"),
                    "phone": format!("+1415{:07}", id),
                    "first_name": "Bench",
                    "last_name": format!("Customer{id}"),
                    "updated_at": chrono::DateTime::from_timestamp(1_700_000_000 + id as i64, 0).unwrap().to_rfc3339(),
                    "tags": "bench",
                })
            })
            .collect();
        let mut resp = ResponseTemplate::new(200).set_body_json(json!({ stream: page }));
        if offset + limit < total {
            let next =
                format!("{}/admin/api/2024-10/{stream}.json?limit={limit}&page_info={}", self.base, offset + limit);
            resp = resp.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
        }
        resp
    }
}

async fn database(dir: &std::path::Path) -> (String, Option<(String, String)>) {
    match std::env::var("JUNCTION_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(admin) => {
            use sea_orm::ConnectionTrait;
            let name = format!("junction_bench_{}", uuid::Uuid::new_v4().simple());
            let db = sea_orm::Database::connect(admin.as_str()).await.unwrap();
            db.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
            let root = admin.rsplit_once('/').map(|(r, _)| r.to_string()).unwrap_or(admin.clone());
            (format!("{root}/{name}"), Some((admin, name)))
        }
        None => (format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()), None),
    }
}

async fn run(customers: usize, rate: Option<f64>, label: &str) -> (Duration, u64, Vec<Instant>) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = database(dir.path()).await;
    let server = MockServer::start().await;
    let shop = Shop { n: customers, base: server.uri(), requests: Arc::new(Mutex::new(Vec::new())) };
    Mock::given(wiremock::matchers::method("GET")).respond_with(shop.clone()).mount(&server).await;

    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.database.url = Some(url);
    config.sync.allow_custom_hosts = true;
    config.sync.scheduler = false;
    let state = junction::build_state(config, true).await.unwrap();
    let id = ConnectorId::new();
    let secrets: BTreeMap<String, String> = [("client_secret", "bench"), ("access_token", "shpat_bench")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut pull = json!({"base_url": server.uri(), "interval_secs": 0, "page_size": 250});
    pull["rate_per_second"] = json!(rate.unwrap_or(10_000.0));
    state
        .store
        .create_connector(NewConnector {
            id,
            kind: "shopify".into(),
            name: "bench".into(),
            config: json!({ "pull": pull }),
            sealed_secrets: state.cipher.seal(id, &secrets).unwrap(),
            secret_last4: None,
        })
        .await
        .unwrap();
    let started = Instant::now();
    let prepared = prepare(&state, id, SyncMode::Backfill).await.unwrap();
    let row = match rate {
        None => prepared.execute().await,
        Some(_) => {
            // Limited: run for a fixed time, then stop (the run is simply dropped).
            let secs: u64 = std::env::var("SYNC_BENCH_LIMITED_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
            let _ = tokio::time::timeout(Duration::from_secs(secs), prepared.execute()).await;
            state.store.sync_runs(id, 1).await.unwrap().remove(0)
        }
    };
    let elapsed = started.elapsed();
    let resolved = state.store.count_customers(&Default::default()).await.unwrap();
    eprintln!("{label}: run {} — {} pages, {} records, {} errors", row.state, row.pages, row.records, row.errors);
    let requests = shop.requests.lock().unwrap().clone();
    drop(state);
    if let Some((admin, name)) = pg {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(admin.as_str()).await.unwrap();
        let _ = db.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    }
    (elapsed, resolved, requests)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let backend = if std::env::var("JUNCTION_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) { "PostgreSQL" } else { "SQLite" };
        let n: usize = std::env::var("SYNC_BENCH_CUSTOMERS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
        let (elapsed, resolved, requests) = run(n, None, "unlimited").await;
        println!("## Pull sync backfill ({backend})");
        println!(
            "| customers | pages | seconds | records/s into resolved customers |\n|---|---|---|---|\n| {resolved} | {} | {:.1} | {:.0} |",
            requests.len(),
            elapsed.as_secs_f64(),
            resolved as f64 / elapsed.as_secs_f64()
        );

        let (_, resolved, requests) = run(n, Some(2.0), "2 req/s").await;
        let t0 = requests[0];
        let mut buckets: BTreeMap<u64, usize> = BTreeMap::new();
        for t in &requests {
            *buckets.entry((*t - t0).as_secs()).or_default() += 1;
        }
        // The sliding-window maximum too: any 1 s window, not just aligned buckets.
        let max_window =
            (0..requests.len()).map(|i| requests[i..].iter().filter(|u| **u - requests[i] < Duration::from_secs(1)).count()).max().unwrap_or(0);
        println!("\n## 2 requests/s quota: requests per second as the mock saw them ({resolved} customers pulled)");
        println!("| second | requests |\n|---|---|");
        for (s, c) in &buckets {
            println!("| {s} | {c} |");
        }
        let max = buckets.values().max().copied().unwrap_or(0);
        let min_gap = requests.windows(2).map(|w| w[1] - w[0]).min().unwrap_or_default();
        println!(
            "\nmax per aligned second: {max}; max in any sliding 1 s window: {max_window}; smallest gap between arrivals: {:.1} ms; mean: {:.2} req/s",
            min_gap.as_secs_f64() * 1000.0,
            (requests.len() - 1) as f64 / (*requests.last().unwrap() - t0).as_secs_f64()
        );
    });
}
