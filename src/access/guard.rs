//! A GraphQL extension that checks, before execution, that the caller may use every root
//! field of the document (fragments included) and that the document is not an alias flood.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, ServerError, ServerResult, Variables};

use super::{allowed, Caller, OperationKind};

pub struct AccessGuard {
    pub max_aliases: usize,
}

impl ExtensionFactory for AccessGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AccessGuardExt { max_aliases: self.max_aliases })
    }
}

struct AccessGuardExt {
    max_aliases: usize,
}

fn error(code: &'static str, message: &str) -> ServerError {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code)).into_server_error(Default::default())
}

fn root_fields<'a>(doc: &'a ExecutableDocument, set: &'a SelectionSet, out: &mut Vec<&'a str>, depth: usize) {
    if depth > 16 {
        return;
    }
    for sel in &set.items {
        match &sel.node {
            Selection::Field(f) => out.push(f.node.name.node.as_str()),
            Selection::FragmentSpread(s) => {
                if let Some(frag) = doc.fragments.get(&s.node.fragment_name.node) {
                    root_fields(doc, &frag.node.selection_set.node, out, depth + 1);
                }
            }
            Selection::InlineFragment(i) => root_fields(doc, &i.node.selection_set.node, out, depth + 1),
        }
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|sel| match &sel.node {
            Selection::Field(f) => f.node.alias.is_some() as usize + count_aliases(&f.node.selection_set.node),
            Selection::InlineFragment(i) => count_aliases(&i.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[async_trait::async_trait]
impl Extension for AccessGuardExt {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let Some(caller) = ctx.data_opt::<Caller>() else {
            return Err(error("UNAUTHENTICATED", "authentication required: send `Authorization: Bearer <api key>`"));
        };
        let mut aliases: usize = doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum();
        for (_, op) in doc.operations.iter() {
            aliases += count_aliases(&op.node.selection_set.node);
            let kind = match op.node.ty {
                OperationType::Query => OperationKind::Query,
                OperationType::Mutation => OperationKind::Mutation,
                OperationType::Subscription => OperationKind::Subscription,
            };
            let mut fields = Vec::new();
            root_fields(&doc, &op.node.selection_set.node, &mut fields, 0);
            if let Some(f) = fields.iter().find(|f| !allowed(caller.role, kind, f)) {
                metrics::counter!("junction_graphql_forbidden_total").increment(1);
                return Err(error("FORBIDDEN", &format!("the `{}` role may not use `{f}`", caller.role.as_str())));
            }
        }
        if aliases > self.max_aliases {
            return Err(error("VALIDATION", &format!("too many aliases ({aliases} > {})", self.max_aliases)));
        }
        Ok(doc)
    }
}
