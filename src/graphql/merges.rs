//! Identity resolution for admins: the merge ledger, manual merge / preview / unmerge, the
//! review queue of merge candidates, and match explanations.

use async_graphql::{Context, Enum, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::query::parse_customer_id;
use super::types::{Address, Customer, Identity, PageInfo};
use super::{page_size, state};
use crate::identity::rules::Explanation;
use crate::ids::{CustomerId, MergeCandidateId, MergeId};
use crate::store::entities::{merge, merge_candidate};
use crate::store::{Cursor, PageRequest};
use crate::ChangeKind;

/// One merge in the ledger.
pub struct Merge(pub merge::Model);

#[Object]
impl Merge {
    async fn id(&self) -> ID {
        ID(MergeId(self.0.id).to_string())
    }
    async fn survivor_id(&self) -> ID {
        ID(CustomerId(self.0.survivor_id).to_string())
    }
    async fn absorbed_id(&self) -> ID {
        ID(CustomerId(self.0.absorbed_id).to_string())
    }
    /// `shared_identifier` (automatic), `manual`, `review_accepted`.
    async fn rule(&self) -> &str {
        &self.0.rule
    }
    /// The identifiers that linked the two, with the rule each one triggered.
    async fn evidence(&self) -> Json<Value> {
        Json(self.0.evidence.clone())
    }
    /// `system` for automatic merges, else who merged.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn undone_at(&self) -> Option<DateTime<Utc>> {
        self.0.undone_at
    }
    async fn undone_by(&self) -> Option<&str> {
        self.0.undone_by.as_deref()
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum CandidateStatus {
    #[default]
    Pending,
    Accepted,
    Rejected,
}

impl CandidateStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CandidateDecision {
    /// Merge the pair.
    Accept,
    /// Keep them apart: the pair is never merged automatically again.
    Reject,
}

/// A probable duplicate awaiting review.
pub struct MergeCandidate(pub merge_candidate::Model);

#[Object]
impl MergeCandidate {
    async fn id(&self) -> ID {
        ID(MergeCandidateId(self.0.id).to_string())
    }
    /// The pair as queued (an absorbed id still resolves through `customer(id)`).
    async fn customer_a_id(&self) -> ID {
        ID(CustomerId(self.0.customer_a).to_string())
    }
    async fn customer_b_id(&self) -> ID {
        ID(CustomerId(self.0.customer_b).to_string())
    }
    async fn customer_a(&self, ctx: &Context<'_>) -> ApiResult<Option<Customer>> {
        live(ctx, self.0.customer_a).await
    }
    async fn customer_b(&self, ctx: &Context<'_>) -> ApiResult<Option<Customer>> {
        live(ctx, self.0.customer_b).await
    }
    /// Why it was queued: `identifier_conflict` (a merge would break a limit),
    /// `shared_identifier_names_differ` (shared phone or email, different people's names),
    /// `attach_only_identifier`, `shared_identifier_suggest_only`, `blocked_pair`.
    async fn rule(&self) -> &str {
        &self.0.rule
    }
    /// The shared identifiers, each with the rule it triggered.
    async fn evidence(&self) -> Json<Value> {
        Json(self.0.evidence.clone())
    }
    async fn status(&self) -> CandidateStatus {
        match self.0.status.as_str() {
            "accepted" => CandidateStatus::Accepted,
            "rejected" => CandidateStatus::Rejected,
            _ => CandidateStatus::Pending,
        }
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.0.decided_at
    }
    async fn decided_by(&self) -> Option<&str> {
        self.0.decided_by.as_deref()
    }
}

async fn live(ctx: &Context<'_>, id: uuid::Uuid) -> ApiResult<Option<Customer>> {
    let st = state(ctx);
    let found = st.store.customer(CustomerId(id)).await.map_err(ApiError::from)?;
    Ok(found.map(|(m, redirected)| Customer::single(&st.store, m, redirected)))
}

#[derive(SimpleObject)]
pub struct MergeCandidateEdge {
    pub cursor: String,
    pub node: MergeCandidate,
}

#[derive(SimpleObject)]
pub struct MergeCandidateConnection {
    pub edges: Vec<MergeCandidateEdge>,
    pub page_info: PageInfo,
}

/// One shared identifier between two customers and the rule it triggers.
#[derive(SimpleObject)]
pub struct MatchEvidence {
    pub kind: super::types::IdentityKind,
    pub namespace: Option<String>,
    pub value: String,
    pub rule: String,
}

/// How the deterministic rules treat two customers.
#[derive(SimpleObject)]
pub struct MatchExplanation {
    /// `merge` (the rules would merge them), `suggest` (review queue) or `no_match`.
    pub verdict: String,
    pub shared: Vec<MatchEvidence>,
    /// Limits a merge would break, or a block from an undone merge or rejected candidate.
    pub conflicts: Vec<String>,
    /// Both have names and their first names clearly differ (household signal).
    pub names_differ: bool,
}

impl From<Explanation> for MatchExplanation {
    fn from(e: Explanation) -> Self {
        Self {
            verdict: e.verdict,
            shared: e
                .shared
                .into_iter()
                .map(|s| MatchEvidence {
                    kind: s.kind.into(),
                    namespace: Some(s.namespace).filter(|n| !n.is_empty()),
                    value: s.value,
                    rule: s.rule,
                })
                .collect(),
            conflicts: e.conflicts,
            names_differ: e.names_differ,
        }
    }
}

/// The golden record two customers would have once merged.
#[derive(SimpleObject)]
pub struct MergePreview {
    pub survivor_id: ID,
    pub absorbed_id: ID,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub birth_date: Option<chrono::NaiveDate>,
    pub addresses: Vec<Address>,
    pub traits: Json<Value>,
    pub identities: Vec<Identity>,
    pub explanation: MatchExplanation,
}

#[derive(SimpleObject)]
pub struct MergePayload {
    pub merge: Merge,
    pub customer: Customer,
}

#[derive(SimpleObject)]
pub struct UnmergePayload {
    pub merge: Merge,
    pub survivor: Customer,
    pub restored: Customer,
}

#[derive(SimpleObject)]
pub struct ResolveMergeCandidatePayload {
    pub candidate: MergeCandidate,
    /// The merge made when accepted.
    pub merge: Option<Merge>,
}

fn parse_merge_id(id: &ID, arg: &str) -> Result<uuid::Uuid, ApiError> {
    MergeId::parse(id.as_str()).map(|m| m.0).map_err(|_| ApiError::validation(arg, "not a merge id"))
}

fn parse_candidate_id(id: &ID, arg: &str) -> Result<uuid::Uuid, ApiError> {
    MergeCandidateId::parse(id.as_str()).map(|m| m.0).map_err(|_| ApiError::validation(arg, "not a merge candidate id"))
}

fn pair(a: &ID, b: &ID) -> Result<(CustomerId, CustomerId), ApiError> {
    let x = parse_customer_id(a, "a")?;
    let y = parse_customer_id(b, "b")?;
    if x == y {
        return Err(ApiError::validation("b", "must differ from `a`"));
    }
    Ok((x, y))
}

async fn merge_row(ctx: &Context<'_>, id: uuid::Uuid) -> ApiResult<Merge> {
    let row = state(ctx).store.merge_by_id(id).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("merge"))?;
    Ok(Merge(row))
}

async fn customer_or_404(ctx: &Context<'_>, id: CustomerId) -> ApiResult<Customer> {
    let st = state(ctx);
    let (m, _) = st.store.customer(id).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("customer"))?;
    Ok(Customer::single(&st.store, m, None))
}

fn not_found_as(e: crate::store::StoreError, what: &'static str) -> ApiError {
    match e {
        crate::store::StoreError::NotFound => ApiError::NotFound(what),
        other => ApiError::from(other),
    }
}

#[derive(Default)]
pub struct MergeQuery;

#[Object]
impl MergeQuery {
    /// The review queue: probable duplicates the rules would not merge on their own,
    /// oldest first.
    async fn merge_candidates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] status: CandidateStatus,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<MergeCandidateConnection> {
        let limit = page_size(ctx, first, None, "first")?;
        let after = after
            .map(|c| Cursor::decode(&c).ok_or_else(|| ApiError::validation("after", "not a cursor from this API")))
            .transpose()?;
        let page = state(ctx)
            .store
            .merge_candidates(status.as_str(), PageRequest { limit, after, before: None, backward: false })
            .await
            .map_err(ApiError::from)?;
        let edges: Vec<MergeCandidateEdge> = page
            .items
            .into_iter()
            .map(|c| MergeCandidateEdge {
                cursor: Cursor { at: c.created_at, id: c.id }.encode(),
                node: MergeCandidate(c),
            })
            .collect();
        Ok(MergeCandidateConnection {
            page_info: PageInfo {
                has_next_page: page.has_more,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// Why two customers would, or would not, be merged by the deterministic rules.
    async fn explain_match(&self, ctx: &Context<'_>, a: ID, b: ID) -> ApiResult<MatchExplanation> {
        let st = state(ctx);
        let (x, y) = pair(&a, &b)?;
        let e = st.store.explain_match(&st.extractor, x, y).await.map_err(|e| not_found_as(e, "customer"))?;
        Ok(e.into())
    }

    /// A dry run of `mergeCustomers`: the golden record and identities the merge would give.
    async fn preview_merge(&self, ctx: &Context<'_>, a: ID, b: ID) -> ApiResult<MergePreview> {
        let st = state(ctx);
        let (x, y) = pair(&a, &b)?;
        let p = st.store.preview_merge(&st.extractor, x, y).await.map_err(|e| not_found_as(e, "customer"))?;
        Ok(MergePreview {
            survivor_id: ID(p.survivor.to_string()),
            absorbed_id: ID(p.absorbed.to_string()),
            given_name: p.golden.given_name,
            family_name: p.golden.family_name,
            full_name: p.golden.full_name,
            birth_date: p.golden.birth_date,
            addresses: p.golden.addresses.into_iter().map(Address::from).collect(),
            traits: Json(Value::Object(p.golden.traits)),
            identities: p.identities.into_iter().map(Identity).collect(),
            explanation: p.explanation.into(),
        })
    }
}

#[derive(Default)]
pub struct MergeMutation;

#[Object]
impl MergeMutation {
    /// Merge two customers by hand (the older survives); recorded with the reason.
    async fn merge_customers(&self, ctx: &Context<'_>, a: ID, b: ID, reason: String) -> ApiResult<MergePayload> {
        let st = state(ctx);
        let (x, y) = pair(&a, &b)?;
        let reason = reason.trim().to_string();
        if reason.is_empty() || reason.len() > 500 {
            return Err(ApiError::validation("reason", "1 to 500 characters").into());
        }
        let (merge_id, survivor, absorbed) = st
            .store
            .merge_customers(x, y, "manual", &super::actor(ctx), Some(reason))
            .await
            .map_err(|e| not_found_as(e, "customer"))?;
        st.notify(absorbed, ChangeKind::Merged);
        st.notify(survivor, ChangeKind::Updated);
        super::audit(
            ctx,
            "customer.merge",
            Some(crate::ids::MergeId(merge_id).to_string()),
            serde_json::json!({"survivor": survivor.to_string()}),
        )
        .await?;
        Ok(MergePayload { merge: merge_row(ctx, merge_id).await?, customer: customer_or_404(ctx, survivor).await? })
    }

    /// Undo a merge: both customers are recomputed from their own source records, as if the
    /// merge had never happened, and the pair is not merged automatically again.
    async fn unmerge_customer(&self, ctx: &Context<'_>, merge_id: ID) -> ApiResult<UnmergePayload> {
        let st = state(ctx);
        let id = parse_merge_id(&merge_id, "mergeId")?;
        let out =
            st.store.unmerge(&st.extractor, id, &super::actor(ctx)).await.map_err(|e| not_found_as(e, "merge"))?;
        super::audit(ctx, "customer.unmerge", Some(crate::ids::MergeId(id).to_string()), serde_json::json!({})).await?;
        st.notify(out.survivor, ChangeKind::Updated);
        st.notify(out.restored, ChangeKind::Created);
        Ok(UnmergePayload {
            merge: merge_row(ctx, id).await?,
            survivor: customer_or_404(ctx, out.survivor).await?,
            restored: customer_or_404(ctx, out.restored).await?,
        })
    }

    /// Accept (merge) or reject (keep apart for good) a merge candidate.
    async fn resolve_merge_candidate(
        &self,
        ctx: &Context<'_>,
        id: ID,
        decision: CandidateDecision,
    ) -> ApiResult<ResolveMergeCandidatePayload> {
        let st = state(ctx);
        let cid = parse_candidate_id(&id, "id")?;
        let merge_id = st
            .store
            .resolve_candidate(cid, decision == CandidateDecision::Accept, &super::actor(ctx))
            .await
            .map_err(|e| not_found_as(e, "merge candidate"))?;
        let candidate = st
            .store
            .merge_candidate(cid)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("merge candidate"))?;
        let merge = match merge_id {
            Some(m) => Some(merge_row(ctx, m).await?),
            None => None,
        };
        Ok(ResolveMergeCandidatePayload { candidate: MergeCandidate(candidate), merge })
    }
}
