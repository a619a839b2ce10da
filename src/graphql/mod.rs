//! The GraphQL API: schema building, queries, mutations, subscriptions and loaders.
//! Resolvers call store and domain functions; they never build SQL.

pub mod admin;
pub mod error;
pub mod loaders;
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
pub struct QueryRoot(query::Query, admin::AdminQuery);

/// The mutation root.
#[derive(async_graphql::MergedObject, Default)]
pub struct MutationRoot(mutation::Mutation, admin::AdminMutation, sync::SyncMutation);

/// The subscription root.
#[derive(async_graphql::MergedSubscription, Default)]
pub struct SubscriptionRoot(subscription::Subscription, sync::SyncSubscription);

pub type JunctionSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Build the schema with the limits from config.
pub fn build_schema(state: Option<AppState>, config: &crate::config::GraphqlConfig) -> JunctionSchema {
    let mut builder = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity);
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL of the schema, as written to `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None, &crate::config::GraphqlConfig::default()).sdl()
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
