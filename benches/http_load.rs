//! Whole-system HTTP load generator against a running hub (release build recommended).
//!
//! ```sh
//! JUNCTION_BOOTSTRAP_ADMIN_KEY=jk_bench_admin_key_0123456789abcdef cargo run --release -- serve &
//! cargo bench --bench http_load -- webhooks http://127.0.0.1:8080 jk_bench_admin_key_0123456789abcdef 10 64
//! cargo bench --bench http_load -- list     http://127.0.0.1:8080 jk_bench_admin_key_0123456789abcdef 10 32
//! cargo bench --bench http_load -- get      http://127.0.0.1:8080 jk_bench_admin_key_0123456789abcdef 10 32
//! cargo bench --bench http_load -- drain    http://127.0.0.1:8080 jk_bench_admin_key_0123456789abcdef
//! ```
//! Arguments: mode, base URL, admin key, seconds, concurrency. Prints requests/s, p50, p99.
//! `webhooks` sends distinct signed Standard Webhooks deliveries to a fresh connector (the
//! public base URL must be the base URL given here); `drain` then times how fast the inbox
//! empties into resolved customers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_connectors::{testing, ConnectorKind, Secrets};
use serde_json::{json, Value};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

async fn gql(client: &reqwest::Client, base: &str, key: &str, q: &str, v: Value) -> Value {
    client
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .json(&json!({"query": q, "variables": v}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn report(name: &str, mut lat: Vec<Duration>, elapsed: Duration, errors: usize) {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    println!(
        "{name}: {} requests in {:.1} s = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms; {errors} errors",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() < 3 {
        eprintln!("usage: http_load MODE BASE_URL ADMIN_KEY [SECONDS] [CONCURRENCY]");
        return;
    }
    let (mode, base, key) = (args[0].clone(), args[1].clone(), args[2].clone());
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let conc: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(32);
    let client = reqwest::Client::builder().pool_max_idle_per_host(conc).build().unwrap();

    if mode == "drain" {
        let start = Instant::now();
        let d = gql(&client, &base, &key, "{ connectors { id name inboxCounts { status count } } }", json!({})).await;
        let id = d["data"]["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|c| c["name"].as_str().unwrap_or("").starts_with("bench-"))
            .unwrap()["id"]
            .clone();
        let q = "query($id: ID!) { connector(id: $id) { inboxCounts { status count } } }";
        let count = |d: &Value, s: &str| {
            d["data"]["connector"]["inboxCounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"] == s)
                .map(|c| c["count"].as_i64().unwrap())
                .sum::<i64>()
        };
        let first = gql(&client, &base, &key, q, json!({"id": id})).await;
        let done0 = count(&first, "processed");
        loop {
            let d = gql(&client, &base, &key, q, json!({"id": id})).await;
            let pending = count(&d, "pending") + count(&d, "retrying") + count(&d, "processing");
            if pending == 0 {
                let done = count(&d, "processed") - done0;
                let t = start.elapsed().as_secs_f64();
                println!("drain: {done} events processed in {t:.1} s = {:.0} events/s", done as f64 / t);
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Prepare the request factory.
    let mut secrets = Secrets::default();
    secrets.current.insert("secret".into(), SECRET.into());
    let (url_for, ids): (String, Vec<String>) = match mode.as_str() {
        "webhooks" => {
            let name = format!("bench-{}", std::process::id());
            let d = gql(&client, &base, &key, "mutation($n: String!, $s: String!) { createConnector(input: {kind: \"standard_webhooks\", name: $n, secrets: {secret: $s}}) { id } }", json!({"n": name, "s": SECRET})).await;
            (format!("{base}/webhooks/{}", d["data"]["createConnector"]["id"].as_str().unwrap()), vec![])
        }
        "list" | "get" => {
            let d = gql(&client, &base, &key, "{ customers(first: 100) { nodes { id } } }", json!({})).await;
            let ids = d["data"]["customers"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string())
                .collect();
            (String::new(), ids)
        }
        other => panic!("unknown mode {other}"),
    };
    let ids = Arc::new(ids);
    let seq = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, base, key, url_for, ids, seq, secrets, mode) = (
            client.clone(),
            base.clone(),
            key.clone(),
            url_for.clone(),
            ids.clone(),
            seq.clone(),
            secrets.clone(),
            mode.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let ok = match mode.as_str() {
                    "webhooks" => {
                        let body = json!({"type": "contact.created", "timestamp": "2025-01-01T00:00:00Z",
                            "data": {"id": format!("ct_{n}"), "email": format!("bench{}@acme.io", n / 2), "first_name": "Bench", "seq": n}}).to_string();
                        let req = testing::sign(ConnectorKind::StandardWebhooks, &secrets, &url_for, body.as_bytes(), chrono::Utc::now());
                        let mut r = client.post(&url_for);
                        for (k, v) in &req.headers {
                            r = r.header(k, v);
                        }
                        r.body(req.body).send().await.map(|r| r.status().is_success()).unwrap_or(false)
                    }
                    "list" => {
                        let q = "{ customers(first: 50) { edges { cursor node { id fullName email phone identities { kind value } } } } }";
                        client.post(format!("{base}/graphql")).bearer_auth(&key).json(&json!({"query": q})).send().await.map(|r| r.status().is_success()).unwrap_or(false)
                    }
                    _ => {
                        let id = &ids[n % ids.len().max(1)];
                        let q = "query($id: ID!) { customer(id: $id) { id fullName email phone identities { kind value } } }";
                        client.post(format!("{base}/graphql")).bearer_auth(&key).json(&json!({"query": q, "variables": {"id": id}})).send().await.map(|r| r.status().is_success()).unwrap_or(false)
                    }
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    report(&mode, all, start.elapsed(), errors);
}
