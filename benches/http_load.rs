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
//! `drain` counts the backlog once (the count scans the inbox), then follows the
//! processed-events counter of `/metrics` every 250 ms until the backlog is processed.
//! `webhooks` sends distinct signed Standard Webhooks deliveries to a fresh connector (the
//! public base URL must be the base URL given here), one keep-alive connection per sender,
//! over a minimal HTTP/1.1 client (see `webhook_sender`); `drain` then times how fast the
//! inbox empties into resolved customers.
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

/// One webhook sender on its own keep-alive connection, speaking just enough HTTP/1.1
/// (request out, status line + Content-Length body back). reqwest costs the generator, which
/// shares the 2 cores with the hub, several times the CPU of the hub's own request handling;
/// this keeps the machine measuring the hub. Every request is still built and signed here,
/// inside the timed loop.
async fn webhook_sender(
    url: String,
    secrets: Secrets,
    seq: Arc<AtomicUsize>,
    deadline: Instant,
) -> (Vec<Duration>, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http:// base URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let connect = || async {
        let s = tokio::net::TcpStream::connect(host).await.ok()?;
        s.set_nodelay(true).ok()?;
        Some(s)
    };
    let mut stream = connect().await;
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut req = Vec::with_capacity(2048);
    let mut buf = vec![0u8; 16 * 1024];
    while Instant::now() < deadline {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        let body = json!({"type": "contact.created", "timestamp": "2025-01-01T00:00:00Z",
            "data": {"id": format!("ct_{n}"), "email": format!("bench{}@acme.io", n / 2), "first_name": "Bench", "seq": n}}).to_string();
        let signed =
            testing::sign(ConnectorKind::StandardWebhooks, &secrets, &url, body.as_bytes(), chrono::Utc::now());
        req.clear();
        req.extend_from_slice(
            format!("POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n", signed.body.len()).as_bytes(),
        );
        for (k, v) in &signed.headers {
            req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(&signed.body);
        let Some(s) = stream.as_mut() else {
            errors += 1;
            stream = connect().await;
            continue;
        };
        let ok = async {
            s.write_all(&req).await.ok()?;
            let mut filled = 0;
            loop {
                let got = s.read(&mut buf[filled..]).await.ok()?;
                if got == 0 {
                    return None;
                }
                filled += got;
                let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = std::str::from_utf8(&buf[..end]).ok()?;
                let status: u16 = head.get(9..12)?.parse().ok()?;
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while filled < end + 4 + len {
                    let got = s.read(&mut buf[filled..]).await.ok()?;
                    if got == 0 {
                        return None;
                    }
                    filled += got;
                }
                return Some((200..300).contains(&status));
            }
        }
        .await;
        match ok {
            Some(true) => lat.push(t.elapsed()),
            Some(false) => errors += 1,
            None => {
                errors += 1;
                stream = connect().await;
            }
        }
    }
    (lat, errors)
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
        // The backlog is counted once (the count scans the inbox); progress is then read
        // from the processed-events counter of /metrics every 250 ms (each scrape also counts
        // the inbox depth, which costs the server).
        let processed = || async {
            let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
            text.lines()
                .filter(|l| l.starts_with("junction_inbox_processed_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as i64
        };
        // Counter first: what is processed while the backlog is counted is then in both.
        let done0 = processed().await;
        let first = gql(&client, &base, &key, q, json!({"id": id})).await;
        let backlog = count(&first, "pending") + count(&first, "retrying") + count(&first, "processing");
        let mut last_check = Instant::now();
        loop {
            let done = processed().await - done0;
            let finished = if done >= backlog {
                true
            } else if last_check.elapsed() >= Duration::from_secs(2) {
                // Events that failed for good are not counted as processed.
                last_check = Instant::now();
                let d = gql(&client, &base, &key, q, json!({"id": id})).await;
                count(&d, "pending") + count(&d, "retrying") + count(&d, "processing") == 0
            } else {
                false
            };
            if finished {
                let t = start.elapsed().as_secs_f64();
                println!(
                    "drain: {done} of a backlog of {backlog} processed in {t:.2} s = {:.0} events/s",
                    done as f64 / t
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
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
    if mode == "webhooks" {
        for _ in 0..conc {
            tasks.push(tokio::spawn(webhook_sender(url_for.clone(), secrets.clone(), seq.clone(), deadline)));
        }
    }
    for _ in 0..if mode == "webhooks" { 0 } else { conc } {
        let (client, base, key, ids, seq, mode) =
            (client.clone(), base.clone(), key.clone(), ids.clone(), seq.clone(), mode.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let ok = match mode.as_str() {
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
