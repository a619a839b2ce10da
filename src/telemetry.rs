//! Logging and metrics set-up. Logs never carry personal data or secrets: handlers log
//! ids and counts, and database URLs are redacted.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::{LogConfig, LogFormat};

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide Prometheus recorder once.
pub fn install_metrics() {
    METRICS.get_or_init(|| PrometheusBuilder::new().install_recorder().ok());
}

/// The Prometheus text exposition, if the recorder is installed.
pub fn render_metrics() -> Option<String> {
    METRICS.get().and_then(|h| h.as_ref()).map(|h| h.render())
}

/// Set up tracing per config. Safe to call once per process.
pub fn init_logging(config: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Hide the password in a database URL.
pub fn redact_url(s: &str) -> String {
    let re = regex::Regex::new(r"(?P<scheme>[a-z]+://[^:/@\s]+):[^@\s]+@");
    match re {
        Ok(re) => re.replace_all(s, "$scheme:***@").into_owned(),
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
