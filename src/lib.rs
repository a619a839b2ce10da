//! Junction: a customer integration hub. See README.md and ARCHITECTURE.md.
//!
//! [`Application::build`] connects the store, migrates and builds the router;
//! [`Application::run_until`] serves until a shutdown signal, draining in-flight requests.
//! Tests start it on port 0 with a fresh database.

pub mod access;
pub mod config;
pub mod dedupe;
pub mod graphql;
pub mod http;
pub mod identity;
pub mod ids;
pub mod ingest;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use config::Config;
use identity::normalize::JunkFilter;
use identity::KeyExtractor;
use ids::CustomerId;
use store::Store;

/// What happened to a customer, for subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Merged,
    Deleted,
}

#[derive(Debug, Clone, Copy)]
pub struct CustomerChange {
    pub customer_id: CustomerId,
    pub kind: ChangeKind,
    pub at: DateTime<Utc>,
}

/// Shared by every request handler and worker.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub extractor: Arc<KeyExtractor>,
    pub changes: broadcast::Sender<CustomerChange>,
    pub cipher: secrets::Cipher,
    /// Wakes inbox workers when a new event is stored.
    pub wake: Arc<tokio::sync::Notify>,
    /// Per-API-key request limiter.
    pub limiter: Arc<KeyLimiter>,
    /// Recently verified keys (by hash), so a request does not cost a key lookup.
    pub key_cache: Arc<access::KeyCache>,
    /// Pull clients, running pulls and their progress.
    pub sync: Arc<sync::SyncHub>,
    /// Connectors with opened secrets (5 s TTL, invalidated by admin mutations).
    pub connectors: Arc<ingest::runtime::ConnectorCache>,
    /// Group commit of webhook deliveries into the inbox.
    pub inbox_writer: store::inbox::InboxWriter,
}

/// A rate limiter keyed by API key id.
pub type KeyLimiter = governor::RateLimiter<
    ids::ApiKeyId,
    governor::state::keyed::HashMapStateStore<ids::ApiKeyId>,
    governor::clock::DefaultClock,
>;

impl AppState {
    /// Tell subscribers a customer changed (no-op when nobody listens).
    pub fn notify(&self, customer_id: CustomerId, kind: ChangeKind) {
        let _ = self.changes.send(CustomerChange { customer_id, kind, at: Utc::now() });
    }
}

/// Build the identifier normaliser from config.
pub fn key_extractor(config: &Config) -> anyhow::Result<KeyExtractor> {
    let junk = JunkFilter::new(&config.identity.junk_values, &config.identity.junk_patterns)
        .map_err(|e| anyhow::anyhow!("configuration key `identity.junk_patterns`: {e}"))?;
    Ok(KeyExtractor::new(junk, config.identity.likely_regions.clone())
        .with_rules(identity::rules::Rules { kinds: config.identity.rules.clone() }))
}

/// Open the configured store (creating the data dir for SQLite) and optionally migrate.
pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<Store> {
    let url = config.database_url();
    if url.starts_with("sqlite:") && config.database.url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    }
    let store = Store::connect(&url, config.database.max_connections)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database: {}", telemetry::redact_url(&e.to_string())))?
        .with_survivorship(config.identity.survivorship.clone());
    if migrate {
        store.migrate().await.map_err(|e| anyhow::anyhow!("migration failed: {e:?}"))?;
    }
    Ok(store)
}

/// The shared state without a server or background tasks (used by `serve` and by CLI
/// commands such as `sync`).
pub async fn build_state(config: Config, migrate: bool) -> anyhow::Result<AppState> {
    let store = open_store(&config, migrate).await?;
    let extractor = Arc::new(key_extractor(&config)?);
    let (changes, _) = broadcast::channel(1024);
    let cipher = secrets::Cipher::load(config.security.master_key.as_deref(), &config.data_dir)?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let sync = Arc::new(sync::SyncHub::new(&config.sync));
    if let Some(key) = &config.security.bootstrap_admin_key {
        store
            .ensure_api_key("bootstrap", "admin", &access::keys::prefix(key), &access::keys::hash(key))
            .await
            .map_err(|e| anyhow::anyhow!("cannot store the bootstrap key: {e}"))?;
    }
    let quota = governor::Quota::per_second(
        std::num::NonZeroU32::new(config.graphql.rate_limit_per_second).unwrap_or(std::num::NonZeroU32::MIN),
    )
    .allow_burst(std::num::NonZeroU32::new(config.graphql.rate_limit_burst).unwrap_or(std::num::NonZeroU32::MIN));
    let limiter = Arc::new(governor::RateLimiter::hashmap(quota));
    let key_cache = Arc::new(access::KeyCache::default());
    let connectors = Arc::new(ingest::runtime::ConnectorCache::default());
    let inbox_writer = store::inbox::InboxWriter::spawn(store.clone());
    Ok(AppState {
        config: Arc::new(config),
        store,
        extractor,
        changes,
        cipher,
        wake,
        sync,
        limiter,
        key_cache,
        connectors,
        inbox_writer,
    })
}

/// A built server, ready to run.
pub struct Application {
    state: AppState,
    listener: TcpListener,
}

impl Application {
    /// Connect, migrate (unless disabled) and bind.
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        telemetry::install_metrics();
        let migrate = config.database.migrate_on_start;
        let state = build_state(config, migrate).await?;
        ingest::worker::spawn_workers(state.clone(), state.wake.clone(), state.config.ingest.workers);
        if state.config.sync.scheduler {
            sync::scheduler::spawn(state.clone());
        }
        Ok(Self { state, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves, then drain in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let router = http::router(self.state.clone());
        axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Serve `config` on `listener` until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    let app = Application::build(config, listener).await?;
    tracing::info!(addr = %app.local_addr()?, "junction listening");
    let store = app.state.store.clone();
    app.run_until(shutdown_signal()).await?;
    store.checkpoint_for_exit().await;
    tracing::info!("junction stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
