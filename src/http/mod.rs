//! HTTP edge (axum): GraphQL, GraphiQL, subscriptions over websocket, health and metrics.

mod health;
mod metrics_layer;
mod webhooks;

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use tower_http::limit::RequestBodyLimitLayer;

use crate::graphql::{build_schema, JunctionSchema};
use crate::AppState;

/// Build the router for `state`.
pub fn router(state: AppState) -> Router {
    let schema = build_schema(Some(state.clone()), &state.config.graphql);
    let body_limit = state.config.server.body_limit_bytes;
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/webhooks/{connector_id}", any(webhooks::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(Extension(schema))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(axum::middleware::from_fn(metrics_layer::track))
        .with_state(state)
}

async fn graphql(Extension(schema): Extension<JunctionSchema>, req: GraphQLRequest) -> GraphQLResponse {
    schema.execute(req.into_inner()).await.into()
}

async fn graphiql(State(state): State<AppState>) -> Response {
    if !state.config.graphql.graphiql {
        return (axum::http::StatusCode::NOT_FOUND, "GraphiQL is disabled").into_response();
    }
    Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish()).into_response()
}

async fn graphql_ws(
    State(state): State<AppState>,
    Extension(schema): Extension<JunctionSchema>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |stream| {
        let _ = &state;
        GraphQLWebSocket::new(stream, schema, protocol).serve()
    })
}
