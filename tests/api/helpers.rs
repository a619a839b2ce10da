//! `spawn_app()`: the real server on port 0 with a fresh store — a SQLite file in a temp
//! dir, or a fresh PostgreSQL database (dropped afterwards) when
//! `JUNCTION_TEST_DATABASE_URL` is set.

use std::net::SocketAddr;

use junction::config::Config;
use junction::AppState;
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin key every test server accepts (bootstrapped from config).
pub const ADMIN_KEY: &str = "jk_test_admin_key_0123456789abcdefghijklmnop";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    #[allow(dead_code)]
    pub database_url: String,
    #[allow(dead_code)]
    pub backend: Backend,
    pg: Option<PgDatabase>,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

/// The admin URL of the test PostgreSQL server, if configured.
pub fn pg_admin_url() -> Option<String> {
    std::env::var("JUNCTION_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside a runtime: use a fresh thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                use sea_orm::ConnectionTrait;
                if let Ok(db) = sea_orm::Database::connect(admin.as_str()).await {
                    let _ = db.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|p| p + 3).unwrap_or(0);
    let root = match base[scheme_end..].rfind('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A fresh store URL for `backend` (None when PostgreSQL is not configured).
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> Option<(String, Option<PgDatabaseHandle>)> {
    match backend {
        Backend::Sqlite => Some((format!("sqlite://{}?mode=rwc", dir.join("junction.db").display()), None)),
        Backend::Postgres => {
            let admin = pg_admin_url()?;
            let name = format!("junction_test_{}", uuid::Uuid::new_v4().simple());
            use sea_orm::ConnectionTrait;
            let db = sea_orm::Database::connect(admin.as_str()).await.expect("connect to JUNCTION_TEST_DATABASE_URL");
            db.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
            let _ = db.close().await;
            Some((with_database(&admin, &name), Some(PgDatabaseHandle(PgDatabase { admin_url: admin, name }))))
        }
    }
}

pub struct PgDatabaseHandle(PgDatabase);

pub fn test_config(dir: &std::path::Path, database_url: &str) -> Config {
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    config.database.url = Some(database_url.to_string());
    config.database.max_connections = 8;
    config.server.public_base_url = Some("https://hub.example.test".into());
    config.security.bootstrap_admin_key = Some(ADMIN_KEY.into());
    // Scheduled pulls would add background queries to tests that count them; the sync
    // tests turn the scheduler on where they need it.
    config.sync.scheduler = false;
    config
}

/// Start the server; None when the backend is not available (PostgreSQL unset).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    // What the server logs as an error (the cause behind an INTERNAL answer, which names
    // only a request id) shows in a failing test's output.
    let _ = tracing_subscriber::fmt().with_env_filter("junction=error").with_test_writer().try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg) = fresh_database(backend, dir.path()).await?;
    let mut config = test_config(dir.path(), &database_url);
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = junction::Application::build(config, listener).await.expect("build app");
    let addr = app.local_addr().expect("addr");
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    Some(TestApp {
        addr,
        client: reqwest::Client::new(),
        state,
        database_url,
        backend,
        pg: pg.map(|h| h.0),
        _dir: dir,
        shutdown: Some(tx),
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.pg.take();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POST a GraphQL request as admin; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(ADMIN_KEY, query, variables).await
    }

    /// POST a GraphQL request with the given API key.
    pub async fn gql_as(&self, key: &str, query: &str, variables: Value) -> Value {
        self.client
            .post(self.url("/graphql"))
            .bearer_auth(key)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .expect("graphql request")
            .json()
            .await
            .expect("graphql json")
    }

    /// POST a GraphQL request that must succeed; returns `data`.
    pub async fn gql_ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Upsert a customer by email (and optional extra input fields); returns its id.
    pub async fn upsert(&self, input: Value) -> Value {
        self.gql_ok(
            "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) { created mergedIds customer { id fullName email phone tags } rejectedIdentifiers { kind reason } } }",
            json!({"input": input}),
        )
        .await["upsertCustomer"]
            .clone()
    }
}

/// The first error's `extensions.code` and `extensions.argument`.
pub fn error_code(body: &Value) -> (String, String) {
    let e = &body["errors"][0]["extensions"];
    (e["code"].as_str().unwrap_or("").to_string(), e["argument"].as_str().unwrap_or("").to_string())
}

/// Generate one test per backend from an `async fn(TestApp)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::both_backends_with!(|_| {}; $($name),*);
    };
}

/// A `sqlite` and a `postgres` test for each named `async fn(Backend)`, which skips
/// itself where PostgreSQL is not configured (for tests that open stores of their own
/// rather than start the app).
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// [`both_backends!`] with the configuration changed by `$tweak` (an `FnOnce(&mut Config)`,
/// a closure or a function path) before the app starts.
#[macro_export]
macro_rules! both_backends_with {
    ($tweak:expr; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::helpers::spawn_app_with($crate::helpers::Backend::Sqlite, $tweak)
                        .await
                        .expect("sqlite app");
                    super::$name(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(app) = $crate::helpers::spawn_app_with($crate::helpers::Backend::Postgres, $tweak).await
                    else {
                        eprintln!("SKIPPED(postgres): JUNCTION_TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name(app).await;
                }
            }
        )*
    };
}

impl TestApp {
    /// Announce a body larger than the limit and read the answer without sending the body
    /// (the server must refuse on the header alone).
    pub async fn post_oversized(&self, path: &str, len: usize) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n",
            self.addr
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}
