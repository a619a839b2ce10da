//! Configuration: built-in defaults → optional TOML file → `JUNCTION_*` environment.
//!
//! Nested keys use `__` in the environment (`JUNCTION_SERVER__BIND=0.0.0.0:8080`);
//! `DATABASE_URL` is honoured as `database.url`. Every value is checked at start and an
//! invalid one is reported with its key and what was expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `development` (default) or `production`: production turns introspection, GraphiQL
    /// and field suggestions off unless explicitly enabled.
    pub profile: Profile,
    /// Where the SQLite database and other local state live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub identity: IdentityConfig,
    pub graphql: GraphqlConfig,
    pub ingest: IngestConfig,
    pub security: SecurityConfig,
    pub sync: SyncConfig,
}

/// Pull sync (see README "Pull sync"). Per-connector settings (interval, rate) live in the
/// connector's `config.pull`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Run scheduled pulls in this process.
    pub scheduler: bool,
    /// How often the scheduler looks for connectors that are due, in seconds.
    pub tick_secs: u64,
    /// Per-request timeout, in seconds.
    pub request_timeout_secs: u64,
    /// Retries of a 5xx, timeout or connection error per request.
    pub max_retries: u32,
    /// Retries of a 429 per request.
    pub max_rate_limited_retries: u32,
    /// First retry delay in milliseconds (doubles per attempt, with jitter).
    pub base_backoff_ms: u64,
    /// Longest retry delay in milliseconds.
    pub max_backoff_ms: u64,
    /// A longer `Retry-After` (seconds) fails the run; the next scheduled run tries again.
    pub max_retry_after_secs: u64,
    /// Consecutive failed requests that open a connector's circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses requests, in seconds.
    pub breaker_cooldown_secs: u64,
    /// Let connectors' `pull.base_url` point anywhere (plain http, any host). For tests
    /// against mock servers only: it disables the protection against a connector config
    /// sending credentials to a foreign host.
    pub allow_custom_hosts: bool,
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Base64 of 32 random bytes: encrypts connector secrets at rest. When unset, a key is
    /// generated once into `<data_dir>/master.key`. Set it explicitly in production.
    pub master_key: Option<String>,
    /// An admin API key accepted from the start (also `JUNCTION_BOOTSTRAP_ADMIN_KEY`), so the
    /// first real keys can be created through GraphQL. Stored hashed like any key.
    pub bootstrap_admin_key: Option<String>,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("master_key", &self.master_key.as_ref().map(|_| "<redacted>"))
            .field("bootstrap_admin_key", &self.bootstrap_admin_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// The URL platforms call, e.g. `https://hub.example.com`. Schemes that sign the URL
    /// (Square, Twilio) verify against it, so a proxy rewriting host or scheme is harmless.
    pub public_base_url: Option<String>,
    /// Largest request body accepted, in bytes (413 beyond).
    pub body_limit_bytes: usize,
    /// How long SIGTERM waits for in-flight requests, in seconds.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; empty means `<data_dir>/junction.db`.
    pub url: Option<String>,
    pub max_connections: u32,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `junction=debug,tower_http=info`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Regions tried, in order, for a phone number written without a country code and
    /// with no other hint; accepted only when exactly one of them gives a valid number.
    pub likely_regions: Vec<String>,
    /// Extra junk values that never become identifiers.
    pub junk_values: Vec<String>,
    /// Extra junk regular expressions.
    pub junk_patterns: Vec<String>,
    /// Deterministic resolution rules per identifier kind, highest priority first: how
    /// many a customer may hold (`max_per_customer`, per namespace for external and device
    /// ids) and what a shared value may do on its own (`trust`: `merge`,
    /// `merge_unless_names_differ`, `attach_only`, `suggest_only`).
    pub rules: Vec<crate::identity::rules::KindRule>,
    /// How the golden record picks each field.
    pub survivorship: crate::identity::survivorship::SurvivorshipPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlConfig {
    /// Largest `first`/`last` on any connection.
    pub max_page_size: u32,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Most aliases one document may use.
    pub max_aliases: usize,
    /// Serve GraphiQL on `GET /graphql` (default: on unless the profile is production).
    pub graphiql: Option<bool>,
    /// Allow introspection (default: on unless the profile is production).
    pub introspection: Option<bool>,
    /// Requests per second per API key (429 with Retry-After beyond).
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// A request that runs longer is answered with a TIMEOUT error.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Inbox worker tasks per process.
    pub workers: usize,
    /// Attempts before an event becomes a dead letter.
    pub max_attempts: i32,
    /// How long a worker owns a leased event; a crashed worker's events are retried after it.
    pub lease_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Development,
            data_dir: PathBuf::from("data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            identity: IdentityConfig::default(),
            graphql: GraphqlConfig::default(),
            ingest: IngestConfig::default(),
            security: SecurityConfig::default(),
            sync: SyncConfig::default(),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            scheduler: true,
            tick_secs: 5,
            request_timeout_secs: 30,
            max_retries: 5,
            max_rate_limited_retries: 30,
            base_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_retry_after_secs: 300,
            breaker_threshold: 8,
            breaker_cooldown_secs: 60,
            allow_custom_hosts: false,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_base_url: None,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_secs: 20,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 16, migrate_on_start: true }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: "info".into() }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            likely_regions: ["US", "CN", "GB", "DE", "FR", "ES"].map(String::from).to_vec(),
            junk_values: vec![],
            junk_patterns: vec![],
            rules: crate::identity::rules::Rules::default().kinds,
            survivorship: Default::default(),
        }
    }
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_page_size: 100,
            max_depth: 12,
            max_complexity: 5000,
            max_aliases: 30,
            graphiql: None,
            introspection: None,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            timeout_secs: 10,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { workers: 2, max_attempts: 8, lease_secs: 60 }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}`: {expected}")]
    Invalid { key: &'static str, expected: String },
}

impl Config {
    /// Load defaults, then `file` (if given), then the environment, and validate.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Parse(format!("config file {} does not exist", path.display())));
            }
            fig = fig.merge(Toml::file(path));
        }
        // JUNCTION_CONFIG, JUNCTION_TEST_* and JUNCTION_BOOTSTRAP_* are read elsewhere.
        fig = fig.merge(Env::prefixed("JUNCTION_").filter(|k| is_config_var(k.as_str())).split("__"));
        if let Ok(key) = std::env::var("JUNCTION_BOOTSTRAP_ADMIN_KEY") {
            fig = fig.merge(Serialized::default("security.bootstrap_admin_key", key));
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            fig = fig.merge(Serialized::default("database.url", url));
        }
        let config: Config = fig.extract().map_err(|e| ConfigError::Parse(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Semantic checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database.url {
            if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid {
                    key: "database.url",
                    expected: "a sqlite:… or postgres://… URL".into(),
                });
            }
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid { key: "database.max_connections", expected: "at least 1".into() });
        }
        if let Some(base) = &self.server.public_base_url {
            if !(base.starts_with("http://") || base.starts_with("https://")) || base.ends_with('/') {
                return Err(ConfigError::Invalid {
                    key: "server.public_base_url",
                    expected: "an http(s) URL without a trailing slash".into(),
                });
            }
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid { key: "server.body_limit_bytes", expected: "at least 1024".into() });
        }
        if self.graphql.max_page_size == 0 {
            return Err(ConfigError::Invalid { key: "graphql.max_page_size", expected: "at least 1".into() });
        }
        if let Some(k) = &self.security.bootstrap_admin_key {
            if k.trim().len() < 20 {
                return Err(ConfigError::Invalid {
                    key: "security.bootstrap_admin_key",
                    expected: "at least 20 characters".into(),
                });
            }
        }
        if self.graphql.rate_limit_per_second == 0 || self.graphql.rate_limit_burst == 0 {
            return Err(ConfigError::Invalid { key: "graphql.rate_limit_per_second", expected: "at least 1".into() });
        }
        if self.ingest.lease_secs < 1 {
            return Err(ConfigError::Invalid { key: "ingest.lease_secs", expected: "at least 1".into() });
        }
        if self.ingest.max_attempts < 1 {
            return Err(ConfigError::Invalid { key: "ingest.max_attempts", expected: "at least 1".into() });
        }
        if self.sync.tick_secs == 0 || self.sync.request_timeout_secs == 0 || self.sync.breaker_threshold == 0 {
            return Err(ConfigError::Invalid {
                key: "sync",
                expected: "tick_secs, request_timeout_secs and breaker_threshold of at least 1".into(),
            });
        }
        if let Some(k) = &self.security.master_key {
            if crate::secrets::Cipher::from_base64(k).is_err() {
                return Err(ConfigError::Invalid { key: "security.master_key", expected: "base64 of 32 bytes".into() });
            }
        }
        for r in &self.identity.likely_regions {
            if r.len() != 2 || !r.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ConfigError::Invalid {
                    key: "identity.likely_regions",
                    expected: format!("ISO-3166 alpha-2 codes in upper case, got `{r}`"),
                });
            }
        }
        let rules = crate::identity::rules::Rules { kinds: self.identity.rules.clone() };
        if let Err(e) = rules.validate() {
            return Err(ConfigError::Invalid { key: "identity.rules", expected: e });
        }
        if let Err(e) = self.identity.survivorship.validate() {
            return Err(ConfigError::Invalid { key: "identity.survivorship", expected: e });
        }
        for p in &self.identity.junk_patterns {
            if regex::Regex::new(p).is_err() {
                return Err(ConfigError::Invalid {
                    key: "identity.junk_patterns",
                    expected: format!("valid regular expressions; `{p}` is not"),
                });
            }
        }
        Ok(())
    }

    pub fn introspection(&self) -> bool {
        self.graphql.introspection.unwrap_or(self.profile != Profile::Production)
    }

    pub fn graphiql(&self) -> bool {
        self.graphql.graphiql.unwrap_or(self.profile != Profile::Production)
    }

    /// The database URL in force: the configured one, else the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("junction.db").display()),
        }
    }
}

fn is_config_var(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !(k == "config" || k.starts_with("test_") || k == "bootstrap_admin_key")
}

fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|err| {
            let key = if err.path.is_empty() { String::new() } else { format!("key `{}`: ", err.path.join(".")) };
            format!("{key}{}", err.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_values_override_defaults_and_bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junction.toml");
        std::fs::write(&path, "[server]\nbind = \"127.0.0.1:9999\"\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.server.bind.port(), 9999);

        std::fs::write(&path, "[server]\nbind = \"not an address\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("server.bind"), "{err}");

        std::fs::write(&path, "[graphql]\nmax_page_size = 0\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("graphql.max_page_size"), "{err}");

        std::fs::write(
            &path,
            "[[identity.rules]]\nkind = \"email\"\nmax_per_customer = 3\ntrust = \"merge\"\n\n[[identity.rules]]\nkind = \"email\"\nmax_per_customer = 1\ntrust = \"attach_only\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("identity.rules") && err.contains("twice"), "{err}");

        std::fs::write(&path, "[identity.survivorship]\ndefault = \"source_priority\"\nsource_priority = [\"shopify\"]\n[identity.survivorship.fields]\nbirth_date = \"first_non_empty\"\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.identity.survivorship.source_priority, vec!["shopify".to_string()]);
        assert_eq!(config.identity.rules.len(), 4, "rules keep their defaults");

        std::fs::write(&path, "[server]\nbnid = 1\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("bnid"), "{err}");
    }
}
