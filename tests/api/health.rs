use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(health_readiness_and_metrics);

async fn health_readiness_and_metrics(app: TestApp) {
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["database"], true);
    assert_eq!(body["migrations"], true);
    let r = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().to_lowercase().contains("graphiql"));
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for metric in [
        "junction_http_requests_total",
        "junction_http_request_duration_seconds",
        "junction_db_pool_connections",
        "junction_inbox_depth",
        "junction_db_queries_total",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }
    assert!(text.contains("route=\"/readyz\""));
    // Oversized bodies are refused before they are read: on the announced length alone.
    // (Sending the 2 MB body raced the server's early close: now and then the client got
    // a broken pipe instead of reading the 413.)
    assert_eq!(app.post_oversized("/graphql", 2 * 1024 * 1024).await, 413);
}
