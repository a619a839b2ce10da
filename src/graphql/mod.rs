//! The GraphQL API: schema building, queries, mutations, subscriptions and loaders.
//! Resolvers call store and domain functions; they never build SQL.

pub mod access;
pub mod admin;
pub mod error;
pub mod loaders;
pub mod merges;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod sync;
pub mod types;

use async_graphql::{Context, Schema};

use crate::AppState;
use error::ApiError;

/// The query root: the customer API and the admin API.
#[derive(async_graphql::MergedObject, Default)]
pub struct QueryRoot(query::Query, admin::AdminQuery, access::AccessQuery, merges::MergeQuery);

/// The mutation root.
#[derive(async_graphql::MergedObject, Default)]
pub struct MutationRoot(
    mutation::Mutation,
    admin::AdminMutation,
    access::AccessMutation,
    merges::MergeMutation,
    sync::SyncMutation,
);

/// The subscription root.
#[derive(async_graphql::MergedSubscription, Default)]
pub struct SubscriptionRoot(subscription::Subscription, sync::SyncSubscription);

pub type JunctionSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Build the schema with the limits from config.
pub fn build_schema(state: Option<AppState>, config: &crate::config::Config) -> JunctionSchema {
    let mut builder = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .limit_depth(config.graphql.max_depth)
        .limit_complexity(config.graphql.max_complexity)
        .extension(crate::access::guard::AccessGuard { max_aliases: config.graphql.max_aliases });
    if !config.introspection() {
        builder = builder.disable_introspection();
    }
    if config.profile == crate::config::Profile::Production {
        builder = builder.disable_suggestions();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL of the schema, as written to `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None, &crate::config::Config::default()).sdl()
}

/// The caller of this request (set by the HTTP layer after authentication).
pub(crate) fn caller(ctx: &Context<'_>) -> Option<crate::access::Caller> {
    ctx.data_opt::<crate::access::Caller>().copied()
}

/// Whether personal data may be shown in clear to this caller.
pub(crate) fn sees_pii(ctx: &Context<'_>) -> bool {
    caller(ctx).is_some_and(|c| c.can(crate::access::Permission::Pii))
}

/// The audit actor for this request.
pub(crate) fn actor(ctx: &Context<'_>) -> String {
    caller(ctx).map(|c| c.actor()).unwrap_or_else(|| "anonymous".into())
}

/// Record an admin action in the audit log (ids only, never personal data or secrets).
pub(crate) async fn audit(
    ctx: &Context<'_>,
    action: &str,
    target: Option<String>,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let who = actor(ctx);
    state(ctx)
        .store
        .audit(crate::store::AuditEntry { actor: &who, action, target, result: "ok", details })
        .await
        .map_err(ApiError::from)
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// Validate a page size argument against the configured cap (default 20).
pub(crate) fn page_size(ctx: &Context<'_>, first: Option<i32>, last: Option<i32>, name: &str) -> Result<u64, ApiError> {
    let max = state(ctx).config.graphql.max_page_size as i64;
    let (value, arg) = match (first, last) {
        (Some(f), _) => (f as i64, name),
        (None, Some(l)) => (l as i64, "last"),
        (None, None) => return Ok(20.min(max) as u64),
    };
    if value < 0 {
        return Err(ApiError::validation(arg, "must not be negative"));
    }
    if value > max {
        return Err(ApiError::validation(arg, format!("must be at most {max}")));
    }
    Ok(value as u64)
}
