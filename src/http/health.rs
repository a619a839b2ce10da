use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers and every migration is applied.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let db = state.store.ping().await.is_ok();
    let migrated = db && state.store.migrations_current().await.unwrap_or(false);
    let status = if db && migrated { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"database": db, "migrations": migrated}))).into_response()
}

/// Prometheus text exposition: requests and latency per route, pool, queries, inbox depth.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (size, idle) = state.store.pool_stats();
    metrics::gauge!("junction_db_pool_connections").set(size as f64);
    metrics::gauge!("junction_db_pool_idle_connections").set(idle as f64);
    if let Ok(depth) = state.store.inbox_depth().await {
        metrics::gauge!("junction_inbox_depth").set(depth as f64);
    }
    let body = crate::telemetry::render_metrics().unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
