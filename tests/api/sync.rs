//! Pull sync against a mock Shopify that emulates its pagination (`Link` + `page_info`,
//! `updated_at_min`), its call-limit header, 429 storms with `Retry-After` and 5xx bursts.

use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{error_code, spawn_app_with, Backend, TestApp};

/// A mock shop: customers and orders ordered by `(updated_at, id)`.
#[derive(Clone)]
pub struct MockShop {
    pub state: Arc<Mutex<ShopState>>,
    pub base: String,
}

#[derive(Default)]
pub struct ShopState {
    pub customers: Vec<Value>,
    pub orders: Vec<Value>,
    /// Every request: when, and its path and query.
    pub requests: Vec<(Instant, String)>,
    /// Answers served before normal ones (429 storms, 5xx bursts).
    pub script: VecDeque<ResponseTemplate>,
    pub delay: Duration,
}

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

pub fn customer(id: u64, updated: i64) -> Value {
    json!({
        "id": id,
        "email": format!("person{id}@acme-mail.io"),
        "first_name": format!("Given{id}"),
        "last_name": "Tester",
        "phone": null,
        "tags": "",
        "updated_at": at(updated).to_rfc3339(),
    })
}

fn order(id: u64, customer_id: u64, updated: i64) -> Value {
    json!({
        "id": id,
        "email": format!("person{customer_id}@acme-mail.io"),
        "currency": "USD",
        "total_price": "12.50",
        "financial_status": "paid",
        "created_at": at(updated).to_rfc3339(),
        "updated_at": at(updated).to_rfc3339(),
        "customer": {"id": customer_id, "email": format!("person{customer_id}@acme-mail.io")},
        "line_items": [{"sku": "SKU1", "name": "Thing", "quantity": 1, "price": "12.50"}],
    })
}

fn sort_key(v: &Value) -> (String, u64) {
    (v["updated_at"].as_str().unwrap_or_default().to_string(), v["id"].as_u64().unwrap_or(0))
}

impl Respond for MockShop {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().unwrap();
        let pq = format!("{}?{}", req.url.path(), req.url.query().unwrap_or(""));
        s.requests.push((Instant::now(), pq));
        let delay = s.delay;
        if let Some(r) = s.script.pop_front() {
            return r.set_delay(delay);
        }
        if req.headers.get("x-shopify-access-token").map(|v| v.to_str().unwrap_or("")) != Some("shpat_test") {
            return ResponseTemplate::new(401)
                .set_body_json(json!({"errors": "[API] Invalid API key or access token"}));
        }
        let stream = if req.url.path().ends_with("/orders.json") { "orders" } else { "customers" };
        let q: Vec<(String, String)> = req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
        // page_info encodes the offset and the filter of the first page, like Shopify's
        // opaque cursor; other filters are not allowed alongside it.
        let (offset, min) = match get("page_info") {
            Some(token) => {
                if get("updated_at_min").is_some() || get("order").is_some() {
                    return ResponseTemplate::new(400).set_body_json(json!({"errors": "page_info: other params"}));
                }
                let Some((o, m)) = token.split_once('~') else {
                    return ResponseTemplate::new(400)
                        .set_body_json(json!({"errors": {"page_info": ["Invalid value."]}}));
                };
                (o.parse::<usize>().unwrap(), (!m.is_empty()).then(|| m.to_string()))
            }
            None => (0, get("updated_at_min")),
        };
        let min_t = min.as_deref().map(|m| DateTime::parse_from_rfc3339(m).unwrap().with_timezone(&Utc));
        let mut items: Vec<Value> = if stream == "orders" { s.orders.clone() } else { s.customers.clone() };
        items.sort_by_key(sort_key);
        let items: Vec<Value> = items
            .into_iter()
            .filter(|v| {
                let t = DateTime::parse_from_rfc3339(v["updated_at"].as_str().unwrap()).unwrap();
                min_t.is_none_or(|m| t >= m)
            })
            .collect();
        let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
        let mut resp = ResponseTemplate::new(200)
            .set_body_json(json!({ stream: page }))
            .insert_header("x-shopify-shop-api-call-limit", "1/40")
            .set_delay(delay);
        if offset + limit < items.len() {
            let token = format!("{}~{}", offset + limit, min.unwrap_or_default());
            let next =
                format!("{}/admin/api/2024-10/{stream}.json?limit={limit}&page_info={}", self.base, url_escape(&token));
            resp = resp.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
        }
        resp
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl MockShop {
    pub async fn start(customers: Vec<Value>) -> (MockServer, Self) {
        let server = MockServer::start().await;
        let shop =
            MockShop { state: Arc::new(Mutex::new(ShopState { customers, ..Default::default() })), base: server.uri() };
        Mock::given(wiremock::matchers::method("GET")).respond_with(shop.clone()).mount(&server).await;
        (server, shop)
    }

    pub fn requests(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().requests.clone()
    }
}

pub fn sync_config(c: &mut junction::config::Config) {
    c.sync.scheduler = false;
    c.sync.allow_custom_hosts = true;
    c.sync.base_backoff_ms = 20;
    c.sync.max_backoff_ms = 200;
    c.sync.breaker_threshold = 4;
    c.security.master_key = Some(MASTER_KEY.into());
}

pub async fn sync_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, sync_config).await
}

pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub async fn create_shopify(app: &TestApp, base: &str, pull: Value) -> String {
    let mut pull = pull;
    pull["base_url"] = json!(base);
    let data = app
        .gql_ok(
            "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { id } }",
            json!({"input": {"kind": "shopify", "name": "Shop", "config": {"pull": pull},
                   "secrets": {"client_secret": "hush", "access_token": "shpat_test"}}}),
        )
        .await;
    data["createConnector"]["id"].as_str().unwrap().to_string()
}

const RUNS: &str = "query($id: ID!) { connector(id: $id) { syncRuns(first: 5) { id mode state pages records errors lastError startedAt finishedAt } cursor { stream watermarkUpdatedAt watermarkId inProgress completedAt } } }";

async fn start_sync(app: &TestApp, id: &str, mode: &str) -> Value {
    app.gql_ok(
        "mutation($id: ID!, $mode: SyncMode!) { syncConnector(id: $id, mode: $mode) { id state mode } }",
        json!({"id": id, "mode": mode}),
    )
    .await["syncConnector"]
        .clone()
}

/// Wait until the latest run is no longer RUNNING; returns the connector's runs and cursor.
async fn finished(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let data = app.gql_ok(RUNS, json!({"id": id})).await;
        if data["connector"]["syncRuns"][0]["state"] != "RUNNING" && !app.state.sync.is_running(parse_id(id)) {
            return data["connector"].clone();
        }
        assert!(Instant::now() < deadline, "pull did not finish: {data}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn customer_count(app: &TestApp) -> u64 {
    app.state.store.count_customers(&Default::default()).await.unwrap()
}

async fn backfill_pulls_every_page_into_resolved_customers(app: TestApp) {
    let customers: Vec<Value> = (1..=23).map(|i| customer(1000 + i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    shop.state.lock().unwrap().orders = vec![order(9001, 1003, 5), order(9002, 1003, 6)];
    let id = create_shopify(&app, &shop.base, json!({"page_size": 5, "interval_secs": 0})).await;

    let started = start_sync(&app, &id, "BACKFILL").await;
    assert_eq!(started["state"], "RUNNING");
    assert_eq!(started["mode"], "BACKFILL");
    let c = finished(&app, &id).await;
    let run = &c["syncRuns"][0];
    assert_eq!(run["state"], "SUCCEEDED", "{c}");
    assert_eq!(run["pages"], 6, "5 customer pages and 1 order page: {c}");
    assert_eq!(run["records"], 25);
    assert_eq!(run["errors"], 0);
    assert!(run["finishedAt"].is_string());
    assert_eq!(customer_count(&app).await, 23);
    assert_eq!(app.state.store.pulled_record_count(parse_id(&id)).await.unwrap(), 25);

    // The same normalised records as webhooks: resolved by email, with the Shopify id and orders.
    let data = app
        .gql_ok(
            r#"{ customerByIdentity(kind: EMAIL, value: "person1003@acme-mail.io") { givenName orders { externalId status } identities { kind value } } }"#,
            json!({}),
        )
        .await;
    let cust = &data["customerByIdentity"];
    assert_eq!(cust["givenName"], "Given1003");
    assert_eq!(cust["orders"].as_array().unwrap().len(), 2, "{cust}");
    assert!(cust["identities"].as_array().unwrap().iter().any(|i| i["value"] == "1003"), "{cust}");

    let cursor: Vec<&Value> = c["cursor"].as_array().unwrap().iter().collect();
    assert_eq!(cursor.len(), 2);
    let customers_cursor = cursor.iter().find(|k| k["stream"] == "customers").unwrap();
    assert_eq!(customers_cursor["watermarkId"], "1023");
    assert_eq!(customers_cursor["watermarkUpdatedAt"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(), at(23));
    assert_eq!(customers_cursor["inProgress"], false);

    // Later pages carry only page_info (as Shopify requires), never the filters.
    let reqs = shop.requests();
    assert!(reqs.iter().filter(|(_, r)| r.contains("page_info")).all(|(_, r)| !r.contains("order=")));
    assert_eq!(reqs.len(), 6, "each page fetched once");
}

fn parse_id(id: &str) -> junction::ids::ConnectorId {
    junction::ids::ConnectorId::parse(id).unwrap()
}

async fn incremental_pull_takes_what_changed_breaking_ties_on_id(app: TestApp) {
    let customers: Vec<Value> = (1..=6).map(|i| customer(100 + i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    let id = create_shopify(&app, &shop.base, json!({"page_size": 2, "interval_secs": 0})).await;
    start_sync(&app, &id, "INCREMENTAL").await;
    let c = finished(&app, &id).await;
    assert_eq!(c["syncRuns"][0]["records"], 6, "{c}");

    {
        let mut s = shop.state.lock().unwrap();
        // Same timestamp as the watermark (106 @ 6) but a greater id: new.
        s.customers.push(customer(107, 6));
        // Same timestamp, smaller id: updated at the very same second but its id sorts
        // before the watermark's — with an exclusive (updated_at, id) cursor this one was
        // already seen at that position, so it must not come again.
        // A later update of an existing customer: new.
        s.customers.retain(|c| c["id"] != 102);
        let mut changed = customer(102, 9);
        changed["first_name"] = json!("Renamed");
        s.customers.push(changed);
        s.requests.clear();
    }
    start_sync(&app, &id, "INCREMENTAL").await;
    let c = finished(&app, &id).await;
    let run = &c["syncRuns"][0];
    assert_eq!(run["state"], "SUCCEEDED", "{c}");
    // 106 comes back (updated_at_min is inclusive) but is dropped: 107 and 102 are new.
    assert_eq!(run["records"], 2, "{c}");
    let reqs = shop.requests();
    assert!(reqs[0].1.contains("updated_at_min="), "{reqs:?}");
    assert_eq!(customer_count(&app).await, 7);
    let data = app
        .gql_ok(r#"{ customerByIdentity(kind: EMAIL, value: "person102@acme-mail.io") { givenName } }"#, json!({}))
        .await;
    assert_eq!(data["customerByIdentity"]["givenName"], "Renamed");
    let cursor = c["cursor"].as_array().unwrap().iter().find(|k| k["stream"] == "customers").unwrap().clone();
    assert_eq!(cursor["watermarkId"], "102");

    // Nothing changed: nothing applied.
    start_sync(&app, &id, "INCREMENTAL").await;
    let c = finished(&app, &id).await;
    assert_eq!(c["syncRuns"][0]["records"], 0, "{c}");
    assert_eq!(app.state.store.pulled_record_count(parse_id(&id)).await.unwrap(), 8);
}

async fn rate_limit_storms_and_5xx_bursts_are_ridden_out(app: TestApp) {
    let customers: Vec<Value> = (1..=9).map(|i| customer(500 + i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    {
        let mut s = shop.state.lock().unwrap();
        for _ in 0..3 {
            s.script.push_back(ResponseTemplate::new(429).insert_header("retry-after", "1"));
        }
        s.script.push_back(ResponseTemplate::new(503));
        s.script.push_back(ResponseTemplate::new(502));
        s.script.push_back(ResponseTemplate::new(500));
    }
    let id = create_shopify(&app, &shop.base, json!({"page_size": 3, "interval_secs": 0})).await;
    let t0 = Instant::now();
    start_sync(&app, &id, "BACKFILL").await;
    let c = finished(&app, &id).await;
    let run = &c["syncRuns"][0];
    assert_eq!(run["state"], "SUCCEEDED", "{c}");
    assert_eq!(run["errors"], 6, "3 × 429 and 3 × 5xx retried: {c}");
    assert_eq!(run["records"], 9);
    assert!(t0.elapsed() >= Duration::from_secs(3), "Retry-After: 1 honoured three times");
    let reqs = shop.requests();
    // After a 429 with Retry-After: 1, the next request waits at least that long.
    for w in reqs.windows(2).take(3) {
        assert!(w[1].0 - w[0].0 >= Duration::from_millis(950), "{:?}", w[1].0 - w[0].0);
    }
    assert_eq!(customer_count(&app).await, 9);
}

async fn a_failing_platform_fails_the_run_and_opens_its_circuit(app: TestApp) {
    let (_server, shop) = MockShop::start(vec![customer(1, 1)]).await;
    {
        let mut s = shop.state.lock().unwrap();
        for _ in 0..100 {
            s.script.push_back(ResponseTemplate::new(500));
        }
    }
    let id = create_shopify(&app, &shop.base, json!({"interval_secs": 0})).await;
    start_sync(&app, &id, "INCREMENTAL").await;
    let c = finished(&app, &id).await;
    let run = &c["syncRuns"][0];
    assert_eq!(run["state"], "FAILED", "{c}");
    assert!(run["lastError"].as_str().unwrap().contains("circuit open"), "{c}");
    let sent = shop.requests().len();
    assert_eq!(sent, 4, "the breaker opens after 4 consecutive failures");
    // While open, a new run fails fast without calling the platform.
    start_sync(&app, &id, "INCREMENTAL").await;
    let c = finished(&app, &id).await;
    assert_eq!(c["syncRuns"][0]["state"], "FAILED");
    assert_eq!(shop.requests().len(), sent);
    // A bad credential is a final answer, not retried.
    let data = app
        .gql_ok(
            "mutation($id: ID!) { rotateConnectorSecret(id: $id, secrets: {client_secret: \"hush\", access_token: \"wrong\"}, graceSeconds: 0) { id } }",
            json!({"id": id}),
        )
        .await;
    assert!(data["rotateConnectorSecret"]["id"].is_string());
    shop.state.lock().unwrap().script.clear();
    start_sync(&app, &id, "INCREMENTAL").await;
    let c = finished(&app, &id).await;
    assert!(c["syncRuns"][0]["lastError"].as_str().unwrap().contains("401"), "{c}");
    assert_eq!(shop.requests().len(), sent + 1);
    assert!(!c["syncRuns"][0]["lastError"].as_str().unwrap().contains("wrong"));
}

async fn the_request_rate_never_exceeds_the_quota(app: TestApp) {
    let customers: Vec<Value> = (1..=12).map(|i| customer(700 + i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    let id = create_shopify(&app, &shop.base, json!({"page_size": 1, "rate_per_second": 4, "interval_secs": 0})).await;
    start_sync(&app, &id, "BACKFILL").await;
    let c = finished(&app, &id).await;
    assert_eq!(c["syncRuns"][0]["state"], "SUCCEEDED", "{c}");
    let times: Vec<Instant> = shop.requests().into_iter().map(|(t, _)| t).collect();
    assert_eq!(times.len(), 13, "12 customer pages and 1 order page");
    // In any window of one second, at most 4 requests arrived (100 ms allowed for network
    // jitter between the client's send and the mock's clock), and 13 requests took ≥ 3 s.
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().filter(|u| **u - *t < Duration::from_millis(900)).count();
        assert!(in_window <= 4, "{in_window} requests within a second");
    }
    assert!(times[12] - times[0] >= Duration::from_millis(2900), "{:?}", times[12] - times[0]);
}

async fn sync_connector_refuses_what_cannot_pull(app: TestApp) {
    let body =
        app.gql("mutation { syncConnector(id: \"con_0190f1f4a9c37a3c8d6a3b1f2e4d5c6b\") { id } }", json!({})).await;
    assert_eq!(error_code(&body).0, "NOT_FOUND");
    let typeform = app
        .gql_ok(
            "mutation { createConnector(input: {kind: \"typeform\", name: \"forms\", secrets: {secret: \"s\"}}) { id } }",
            json!({}),
        )
        .await["createConnector"]["id"]
        .clone();
    let body = app.gql("mutation($id: ID!) { syncConnector(id: $id) { id } }", json!({"id": typeform})).await;
    assert_eq!(error_code(&body), ("VALIDATION".into(), "id".into()), "{body}");
    // A Shopify connector without its access token cannot pull either; the message names it.
    let shop = app
        .gql_ok(
            "mutation { createConnector(input: {kind: \"shopify\", name: \"no token\", config: {pull: {shop: \"acme\"}}, secrets: {client_secret: \"s\"}}) { id } }",
            json!({}),
        )
        .await["createConnector"]["id"]
        .clone();
    let body = app.gql("mutation($id: ID!) { syncConnector(id: $id) { id } }", json!({"id": shop})).await;
    assert_eq!(error_code(&body).0, "VALIDATION");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("access_token"), "{body}");
    // Invalid pull settings are refused when the connector is created.
    let body = app
        .gql(
            "mutation { createConnector(input: {kind: \"shopify\", name: \"bad\", config: {pull: {shop: \"a/b\"}}, secrets: {client_secret: \"s\"}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), ("VALIDATION".into(), "config.pull.shop".into()), "{body}");

    // A second pull of a connector being pulled is a CONFLICT.
    let customers: Vec<Value> = (1..=4).map(|i| customer(i, i as i64)).collect();
    let (_server, mock) = MockShop::start(customers).await;
    mock.state.lock().unwrap().delay = Duration::from_millis(300);
    let id = create_shopify(&app, &mock.base, json!({"page_size": 1, "interval_secs": 0})).await;
    start_sync(&app, &id, "BACKFILL").await;
    let body = app.gql("mutation($id: ID!) { syncConnector(id: $id) { id } }", json!({"id": id})).await;
    assert_eq!(error_code(&body).0, "CONFLICT", "{body}");
    finished(&app, &id).await;
}

async fn progress_is_published_per_page(app: TestApp) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let customers: Vec<Value> = (1..=4).map(|i| customer(i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    let id = create_shopify(&app, &shop.base, json!({"page_size": 2, "interval_secs": 0})).await;
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket");
    ws.send(Message::Text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", crate::helpers::ADMIN_KEY)}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let _ack = ws.next().await.unwrap().unwrap();
    let q = "subscription($id: ID!) { syncProgress(connectorId: $id) { stream pages records state } }";
    ws.send(Message::Text(
        json!({"id": "1", "type": "subscribe", "payload": {"query": q, "variables": {"id": id}}}).to_string().into(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    start_sync(&app, &id, "BACKFILL").await;
    let mut events = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        let p = v["payload"]["data"]["syncProgress"].clone();
        let done = p["state"] != "RUNNING";
        events.push(p);
        if done {
            break;
        }
    }
    let states: Vec<(&str, i64, &str)> = events
        .iter()
        .map(|e| (e["stream"].as_str().unwrap(), e["records"].as_i64().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("customers", 2, "RUNNING"),
            ("customers", 4, "RUNNING"),
            ("orders", 4, "RUNNING"),
            ("orders", 4, "SUCCEEDED")
        ]
    );
}

// The sync test configuration: scheduler off, mock hosts allowed.
crate::both_backends_with!(super::sync_config;
    backfill_pulls_every_page_into_resolved_customers,
    incremental_pull_takes_what_changed_breaking_ties_on_id,
    rate_limit_storms_and_5xx_bursts_are_ridden_out,
    a_failing_platform_fails_the_run_and_opens_its_circuit,
    the_request_rate_never_exceeds_the_quota,
    sync_connector_refuses_what_cannot_pull,
    progress_is_published_per_page,
);

async fn scheduled(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.sync.scheduler = true;
        c.sync.tick_secs = 1;
        c.sync.allow_custom_hosts = true;
        c.security.master_key = Some(MASTER_KEY.into());
    })
    .await
    else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let customers: Vec<Value> = (1..=3).map(|i| customer(i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    let id = create_shopify(&app, &shop.base, json!({"interval_secs": 2})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while customer_count(&app).await < 3 {
        assert!(Instant::now() < deadline, "the scheduler did not pull");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shop.state.lock().unwrap().customers.push(customer(4, 10));
    while customer_count(&app).await < 4 {
        assert!(Instant::now() < deadline, "the scheduler did not pull again after the interval");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = app.gql_ok(RUNS, json!({"id": id})).await["connector"]["syncRuns"].as_array().unwrap().len();
    assert!((2..=4).contains(&runs), "one run per interval, got {runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_pulls_on_its_interval_sqlite() {
    scheduled(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_pulls_on_its_interval_postgres() {
    scheduled(Backend::Postgres).await;
}

// ---- The `junction sync` command: killed mid-backfill, and two processes at once ----

fn junction_sync(app: &TestApp, data_dir: &std::path::Path, id: &str, backfill: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JUNCTION_DATA_DIR", data_dir)
        .env("DATABASE_URL", &app.database_url)
        .env("JUNCTION_SECURITY__MASTER_KEY", MASTER_KEY)
        .env("JUNCTION_SYNC__ALLOW_CUSTOM_HOSTS", "true")
        .env("JUNCTION_LOG__FILTER", "warn")
        .args(["sync", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if backfill {
        cmd.arg("--backfill");
    }
    cmd
}

async fn killed(backend: Backend) {
    let Some(app) = sync_app(backend).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 60u64;
    let customers: Vec<Value> = (1..=n).map(|i| customer(i, (i / 3) as i64)).collect(); // ties on updated_at
    let (_server, shop) = MockShop::start(customers).await;
    shop.state.lock().unwrap().delay = Duration::from_millis(150);
    let id = create_shopify(&app, &shop.base, json!({"page_size": 4, "interval_secs": 0})).await;
    let cid = parse_id(&id);

    let mut child = junction_sync(&app, dir.path(), &id, true).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pulled = app.state.store.pulled_record_count(cid).await.unwrap();
        if pulled >= 12 {
            break;
        }
        assert!(Instant::now() < deadline, "the first process made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the first process ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    child.wait().unwrap();
    let after_kill = app.state.store.pulled_record_count(cid).await.unwrap();
    assert!(after_kill < n, "killed mid-backfill");
    let pages_before = shop.requests().len();

    let out = junction_sync(&app, dir.path(), &id, true).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("backfill succeeded"), "{stdout}");

    // No gap, no duplicate: every customer once, every record applied once.
    assert_eq!(customer_count(&app).await, n);
    assert_eq!(app.state.store.pulled_record_count(cid).await.unwrap(), n);
    // The second process resumed from the cursor: it did not start over.
    let resumed = &shop.requests()[pages_before..];
    assert!(resumed[0].1.contains("page_info="), "resumed at a later page: {:?}", resumed[0]);
    let c = app.gql_ok(RUNS, json!({"id": id})).await["connector"].clone();
    let states: Vec<&str> = c["syncRuns"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["SUCCEEDED", "INTERRUPTED"], "{c}");
    let pages: i64 = c["syncRuns"].as_array().unwrap().iter().map(|r| r["pages"].as_i64().unwrap()).sum();
    assert_eq!(pages, 15 + 1, "every customer page and the order page committed exactly once: {c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_killed_mid_backfill_resumes_without_gaps_or_duplicates_sqlite() {
    killed(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_killed_mid_backfill_resumes_without_gaps_or_duplicates_postgres() {
    killed(Backend::Postgres).await;
}

/// Two hub processes sharing one PostgreSQL: only one pulls a connector at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_pull_one_connector_at_once_postgres() {
    let Some(app) = sync_app(Backend::Postgres).await else {
        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let customers: Vec<Value> = (1..=20).map(|i| customer(i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    shop.state.lock().unwrap().delay = Duration::from_millis(100);
    let id = create_shopify(&app, &shop.base, json!({"page_size": 2, "interval_secs": 0})).await;
    let first = junction_sync(&app, dir.path(), &id, true).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while shop.requests().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = junction_sync(&app, dir.path(), &id, true).output().unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another process"));
    // The hub itself is a third process-like contender: refused too.
    let body = app.gql("mutation($id: ID!) { syncConnector(id: $id) { id } }", json!({"id": id})).await;
    assert_eq!(error_code(&body).0, "CONFLICT", "{body}");
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(shop.requests().len(), 11, "10 customer pages and 1 order page, each fetched once");
    assert_eq!(app.state.store.pulled_record_count(parse_id(&id)).await.unwrap(), 20);
    // Once the first is done, the lock is free again.
    let again = junction_sync(&app, dir.path(), &id, false).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

// ---- Other platforms' pagination, end to end through the same runner ----

/// A wiremock responder from a closure; records every request.
#[derive(Clone)]
struct FnMock {
    f: Arc<dyn Fn(&Request) -> ResponseTemplate + Send + Sync>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Respond for FnMock {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.seen.lock().unwrap().push(format!("{} {}?{}", req.method, req.url.path(), req.url.query().unwrap_or("")));
        (self.f)(req)
    }
}

async fn fn_mock(
    f: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
) -> (MockServer, Arc<Mutex<Vec<String>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(wiremock::matchers::any())
        .respond_with(FnMock { f: Arc::new(f), seen: seen.clone() })
        .mount(&server)
        .await;
    (server, seen)
}

fn query(req: &Request, key: &str) -> Option<String> {
    req.url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

async fn create(app: &TestApp, kind: &str, config: Value, secrets: Value) -> String {
    app.gql_ok(
        "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { id } }",
        json!({"input": {"kind": kind, "name": kind, "config": config, "secrets": secrets}}),
    )
    .await["createConnector"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn typeform_inclusive_cursor_drops_the_repeated_response(app: TestApp) {
    // Typeform's `after` is inclusive: the page starts with the response it names.
    let tokens: Vec<String> = (1..=7).map(|i| format!("tok{i}")).collect();
    let all = tokens.clone();
    let (server, seen) = fn_mock(move |req| {
        let size: usize = query(req, "page_size").unwrap().parse().unwrap();
        let start = match query(req, "after") {
            Some(t) => all.iter().position(|x| *x == t).unwrap(),
            None => 0,
        };
        let items: Vec<Value> = all[start..]
            .iter()
            .take(size)
            .map(|t| {
                json!({"token": t, "submitted_at": "2024-05-01T10:00:00Z", "answers": [
                {"type": "email", "email": format!("{t}@acme-mail.io"), "field": {"id": "f1", "type": "email"}}]})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"total_items": 7, "page_count": 1, "items": items}))
    })
    .await;
    let id = create(
        &app,
        "typeform",
        json!({"pull": {"form_id": "abc123", "base_url": server.uri(), "page_size": 3, "interval_secs": 0}}),
        json!({"secret": "s", "api_token": "tfp_test"}),
    )
    .await;
    start_sync(&app, &id, "BACKFILL").await;
    let c = finished(&app, &id).await;
    assert_eq!(c["syncRuns"][0]["state"], "SUCCEEDED", "{c}");
    assert_eq!(c["syncRuns"][0]["records"], 7, "each response once: {c}");
    assert_eq!(app.state.store.pulled_record_count(parse_id(&id)).await.unwrap(), 7);
    assert_eq!(customer_count(&app).await, 7);
    let seen = seen.lock().unwrap().clone();
    assert!(seen[1].contains("after=tok3"), "{seen:?}");
}

async fn stripe_and_woocommerce_paginate_their_own_way(app: TestApp) {
    // Stripe: newest first, `starting_after` exclusive, `has_more`.
    let ids: Vec<String> = (1..=5).rev().map(|i| format!("cus_{i}")).collect();
    let all = ids.clone();
    let (stripe, _) = fn_mock(move |req| {
        if req.url.path() == "/v1/checkout/sessions" {
            return ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [], "has_more": false}));
        }
        let limit: usize = query(req, "limit").unwrap().parse().unwrap();
        let start = query(req, "starting_after").map(|s| all.iter().position(|x| *x == s).unwrap() + 1).unwrap_or(0);
        let data: Vec<Value> = all[start..]
            .iter()
            .take(limit)
            .map(|id| json!({"id": id, "object": "customer", "email": format!("{id}@acme-mail.io"), "created": 1_700_000_000}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data, "has_more": start + limit < all.len()}))
    })
    .await;
    let sid = create(
        &app,
        "stripe",
        json!({"pull": {"base_url": stripe.uri(), "page_size": 2, "interval_secs": 0}}),
        json!({"signing_secret": "whsec_x", "api_key": "sk_test_x"}),
    )
    .await;
    start_sync(&app, &sid, "BACKFILL").await;
    let c = finished(&app, &sid).await;
    assert_eq!(
        (c["syncRuns"][0]["state"].as_str(), c["syncRuns"][0]["records"].as_i64()),
        (Some("SUCCEEDED"), Some(5)),
        "{c}"
    );

    // WooCommerce: `page` numbers up to `X-WP-TotalPages`, Basic auth, self-hosted base URL.
    let (woo, seen) = fn_mock(move |req| {
        let auth = req.headers.get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        if auth != "Basic Y2tfMTpjc18x" {
            return ResponseTemplate::new(401);
        }
        let page: usize = query(req, "page").unwrap().parse().unwrap();
        let per: usize = query(req, "per_page").unwrap().parse().unwrap();
        let is_orders = req.url.path().ends_with("/orders");
        let n = if is_orders { 0 } else { 5 };
        let items: Vec<Value> = ((page - 1) * per..(page * per).min(n))
            .map(|i| {
                json!({"id": 200 + i, "email": format!("woo{i}@acme-mail.io"), "first_name": "W", "last_name": "C",
                             "billing": {}, "shipping": {}, "date_modified_gmt": "2024-05-01T10:00:00"})
            })
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(items)
            .insert_header("x-wp-totalpages", n.div_ceil(per).max(1).to_string().as_str())
    })
    .await;
    let wid = create(
        &app,
        "woocommerce",
        json!({"pull": {"base_url": woo.uri(), "page_size": 2, "interval_secs": 0}}),
        json!({"webhook_secret": "w", "consumer_key": "ck_1", "consumer_secret": "cs_1"}),
    )
    .await;
    start_sync(&app, &wid, "BACKFILL").await;
    let c = finished(&app, &wid).await;
    assert_eq!(
        (c["syncRuns"][0]["state"].as_str(), c["syncRuns"][0]["records"].as_i64()),
        (Some("SUCCEEDED"), Some(5)),
        "{c}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|r| r.contains("/customers")).count(), 3, "{seen:?}");
    assert_eq!(customer_count(&app).await, 10);
}

async fn hubspot_pulls_contacts_and_honours_its_rate_headers(app: TestApp) {
    let (server, seen) = fn_mock(move |req| {
        let after: usize = query(req, "after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let results: Vec<Value> = (after..(after + 2).min(4))
            .map(|i| {
                json!({"id": (i + 1).to_string(), "updatedAt": "2024-05-01T10:00:00Z",
                            "properties": {"email": format!("hs{i}@acme-mail.io"), "firstname": "H"}})
            })
            .collect();
        let mut body = json!({"results": results});
        if after + 2 < 4 {
            body["paging"] = json!({"next": {"after": (after + 2).to_string()}});
        }
        // The 10-second window is used up after the first page: the client must pause.
        let remaining = if after == 0 { "1" } else { "50" };
        ResponseTemplate::new(200)
            .set_body_json(body)
            .insert_header("x-hubspot-ratelimit-remaining", remaining)
            .insert_header("x-hubspot-ratelimit-interval-milliseconds", "1500")
    })
    .await;
    let id = create(
        &app,
        "hubspot",
        json!({"pull": {"base_url": server.uri(), "page_size": 2, "interval_secs": 0}}),
        json!({"client_secret": "c", "access_token": "pat-test"}),
    )
    .await;
    let t0 = Instant::now();
    start_sync(&app, &id, "BACKFILL").await;
    let c = finished(&app, &id).await;
    assert_eq!(
        (c["syncRuns"][0]["state"].as_str(), c["syncRuns"][0]["records"].as_i64()),
        (Some("SUCCEEDED"), Some(4)),
        "{c}"
    );
    assert!(t0.elapsed() >= Duration::from_millis(1500), "paused on X-HubSpot-RateLimit-Remaining");
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(customer_count(&app).await, 4);
}

async fn an_expired_page_token_restarts_the_stream(app: TestApp) {
    let customers: Vec<Value> = (1..=5).map(|i| customer(300 + i, i as i64)).collect();
    let (_server, shop) = MockShop::start(customers).await;
    let id = create_shopify(&app, &shop.base, json!({"page_size": 2, "interval_secs": 0})).await;
    // An interrupted backfill whose page token the platform no longer accepts.
    let state = json!({"watermark": null, "run": {"mode": "backfill", "page": "expired-token", "since": null, "high": null, "pages": 3}});
    let tx = app.state.store.write().await.unwrap();
    app.state.store.save_sync_cursor(&tx, parse_id(&id), "customers", &state).await.unwrap();
    tx.commit().await.unwrap();
    let c = app.gql_ok(RUNS, json!({"id": id})).await["connector"].clone();
    assert_eq!(c["cursor"][0]["inProgress"], true);
    start_sync(&app, &id, "INCREMENTAL").await;
    let c = finished(&app, &id).await;
    let run = &c["syncRuns"][0];
    assert_eq!(run["state"], "SUCCEEDED", "{c}");
    assert_eq!(run["records"], 5, "the stream restarted from its first page: {c}");
    assert_eq!(run["errors"], 1);
    let reqs = shop.requests();
    assert!(reqs[0].1.contains("page_info=expired-token") && !reqs[1].1.contains("page_info"), "{reqs:?}");
}

async fn square_twilio_and_slack_follow_their_cursors(app: TestApp) {
    // Square: POST search, `cursor` in the body.
    let (square, seen_sq) = fn_mock(move |req| {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let start: usize = body["cursor"].as_str().map(|c| c.parse().unwrap()).unwrap_or(0);
        let customers: Vec<Value> = (start..(start + 2).min(3))
            .map(|i| json!({"id": format!("SQ{i}"), "email_address": format!("sq{i}@acme-mail.io"), "updated_at": "2024-05-01T10:00:00Z"}))
            .collect();
        let mut out = json!({"customers": customers});
        if start + 2 < 3 {
            out["cursor"] = json!((start + 2).to_string());
        }
        ResponseTemplate::new(200).set_body_json(out)
    })
    .await;
    let id = create(
        &app,
        "square",
        json!({"pull": {"base_url": square.uri(), "page_size": 2, "interval_secs": 0}}),
        json!({"signature_key": "k", "access_token": "EAAA"}),
    )
    .await;
    start_sync(&app, &id, "BACKFILL").await;
    let c = finished(&app, &id).await;
    assert_eq!(
        (c["syncRuns"][0]["state"].as_str(), c["syncRuns"][0]["records"].as_i64()),
        (Some("SUCCEEDED"), Some(3)),
        "{c}"
    );
    assert!(seen_sq.lock().unwrap().iter().all(|r| r.starts_with("POST /v2/customers/search")));

    // Twilio: `next_page_uri` on the API host; messages become customers by phone.
    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    let (twilio, _) = fn_mock(move |req| {
        let page: usize = query(req, "Page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let messages: Vec<Value> = (page * 2..(page * 2 + 2).min(3))
            .map(|i| json!({"sid": format!("SM{i}"), "direction": "inbound", "from": format!("+1415555010{i}"), "to": "+14155550199",
                            "body": "hi", "date_sent": "Wed, 01 May 2024 10:00:00 +0000"}))
            .collect();
        let next = (page == 0).then(|| format!("/2010-04-01/Accounts/{SID}/Messages.json?PageSize=2&Page=1&PageToken=PA1"));
        ResponseTemplate::new(200).set_body_json(json!({"messages": messages, "next_page_uri": next}))
    })
    .await;
    let id = create(
        &app,
        "twilio",
        json!({"pull": {"account_sid": SID, "base_url": twilio.uri(), "page_size": 2, "interval_secs": 0}}),
        json!({"auth_token": "tok"}),
    )
    .await;
    start_sync(&app, &id, "BACKFILL").await;
    let c = finished(&app, &id).await;
    assert_eq!(
        (c["syncRuns"][0]["state"].as_str(), c["syncRuns"][0]["records"].as_i64()),
        (Some("SUCCEEDED"), Some(3)),
        "{c}"
    );

    // Slack: users.list, `response_metadata.next_cursor`; an empty cursor ends the list.
    let (slack, _) = fn_mock(move |req| {
        let cursor = query(req, "cursor");
        let (members, next) = match cursor.as_deref() {
            None => (vec![json!({"id": "U1", "updated": 1714557600, "profile": {"email": "u1@acme-mail.io"}})], "c2"),
            _ => (vec![json!({"id": "U2", "updated": 1714557601, "profile": {"email": "u2@acme-mail.io"}})], ""),
        };
        ResponseTemplate::new(200)
            .set_body_json(json!({"ok": true, "members": members, "response_metadata": {"next_cursor": next}}))
    })
    .await;
    let id = create(
        &app,
        "slack",
        json!({"pull": {"base_url": slack.uri(), "rate_per_second": 50, "interval_secs": 0}}),
        json!({"signing_secret": "s", "bot_token": "xoxb-1"}),
    )
    .await;
    start_sync(&app, &id, "BACKFILL").await;
    let c = finished(&app, &id).await;
    assert_eq!(
        (c["syncRuns"][0]["state"].as_str(), c["syncRuns"][0]["records"].as_i64()),
        (Some("SUCCEEDED"), Some(2)),
        "{c}"
    );
    assert_eq!(customer_count(&app).await, 8);
}

crate::both_backends_with!(super::sync_config;
    square_twilio_and_slack_follow_their_cursors,
    an_expired_page_token_restarts_the_stream,
    typeform_inclusive_cursor_drops_the_repeated_response,
    stripe_and_woocommerce_paginate_their_own_way,
    hubspot_pulls_contacts_and_honours_its_rate_headers,
);
