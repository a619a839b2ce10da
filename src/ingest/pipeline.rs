//! From a verified inbox event to customer data, in one transaction: parse with the
//! connector, resolve identities, upsert orders, append timeline events, honour privacy
//! requests, and mark the event processed. Several events can share one transaction
//! ([`process_batch`]), each in its own savepoint.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use junction_connectors::{Direction, PullError, Record, Refetch, RefetchError, StoredEvent};
use serde_json::{json, Map, Value};

use super::runtime::{region_of, LiveConnector};
use crate::identity::{Observation, SourceRef};
use crate::ids::{ConnectorId, CustomerId, InboxId};
use crate::store::entities::{connector, inbox, order};
use crate::store::records::{OrderWrite, TimelineEvent};
use crate::store::{BulkItem, IngestOutcome, StoreError, WriteTx};
use crate::{AppState, ChangeKind};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("connector unavailable: {0}")]
    Connector(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl ProcessError {
    /// Retrying cannot change the outcome: the event is dead-lettered at once.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Read(ReadError::Unconfirmed(_)))
    }
}

/// Why a leased row's records could not be had. Messages carry no payload data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("payload could not be parsed: {0}")]
    Parse(String),
    /// Reading the event back from the platform failed (network, 5xx, credentials);
    /// a later attempt may succeed.
    #[error("re-fetch from the platform failed: {0}")]
    Refetch(String),
    /// The platform does not confirm the delivery (unknown, deleted, or another subject).
    #[error("the platform does not confirm this delivery: {0}")]
    Unconfirmed(String),
}

/// A leased inbox row, its connector, and its records: parsed from the stored delivery, or
/// (connectors set up to re-fetch, see [`Leased::read`]) as the platform's API returns them.
/// Read once per lease, before any write transaction.
pub struct Leased {
    pub live: Arc<LiveConnector>,
    pub row: inbox::Model,
    records: Result<Vec<Record>, ReadError>,
}

impl Leased {
    /// Parse the stored delivery (no I/O): what [`Connector::parse`] makes of it.
    ///
    /// [`Connector::parse`]: junction_connectors::Connector::parse
    pub fn parsed(live: Arc<LiveConnector>, row: inbox::Model) -> Self {
        let records = live.connector.parse(&stored_event(&row)).map_err(|e| ReadError::Parse(e.to_string()));
        Self { live, row, records }
    }

    /// The row's records: re-fetched from the platform when its connector is set up to
    /// (the delivery is then only a notice), else parsed.
    pub async fn read(state: &AppState, live: Arc<LiveConnector>, row: inbox::Model) -> Self {
        let Some(refetch) = live.connector.refetch() else {
            return Self::parsed(live, row);
        };
        let records = refetched(state, &live, refetch, &stored_event(&row)).await;
        Self { live, row, records }
    }

    fn records(&self) -> Result<Vec<Record>, ReadError> {
        self.records.clone()
    }
}

/// Ask the platform for the event's subject, through the connector's pull client (host
/// policy, rate limit, retries of transient failures).
async fn refetched(
    state: &AppState,
    live: &LiveConnector,
    refetch: &dyn Refetch,
    event: &StoredEvent,
) -> Result<Vec<Record>, ReadError> {
    let request = refetch.request(event).map_err(refetch_error)?;
    let id = ConnectorId(live.row.id);
    let client = state
        .sync
        .client(id, refetch.quota(), &live.row.updated_at.to_rfc3339())
        .map_err(|e| ReadError::Refetch(e.to_string()))?;
    match client.send(refetch, &request).await {
        Ok((response, _)) => refetch.parse(event, &response).map_err(refetch_error),
        Err(PullError::Status { status: 404 | 410, detail }) => {
            Err(ReadError::Unconfirmed(format!("the platform answered 404/410: {detail}")))
        }
        Err(e) => Err(ReadError::Refetch(e.to_string())),
    }
}

fn refetch_error(e: RefetchError) -> ReadError {
    match e {
        RefetchError::Unconfirmed(why) | RefetchError::Unaddressable(why) => ReadError::Unconfirmed(why),
        RefetchError::Parse(e) => ReadError::Refetch(e.to_string()),
    }
}

fn stored_event(row: &inbox::Model) -> StoredEvent {
    StoredEvent {
        event_id: row.event_id.clone(),
        event_type: row.event_type.clone(),
        headers: serde_json::from_value(row.headers.clone()).unwrap_or_default(),
        query: serde_json::from_value(row.query.clone()).unwrap_or_default(),
        body: row.body.clone(),
        received_at: row.received_at,
    }
}

/// Process one leased inbox row. On success its effects and its `processed` state commit
/// together; on error nothing of it is kept.
pub async fn process(
    state: &AppState,
    live: &Arc<LiveConnector>,
    row: &inbox::Model,
) -> Result<Vec<(CustomerId, ChangeKind)>, ProcessError> {
    process_leased(state, &Leased::parsed(live.clone(), row.clone())).await
}

/// [`process`] with the row's records already read.
pub async fn process_leased(state: &AppState, leased: &Leased) -> Result<Vec<(CustomerId, ChangeKind)>, ProcessError> {
    let records = leased.records()?;
    let tx = state.store.write().await?;
    let changes = apply_and_complete(state, &tx, leased, records).await?;
    tx.commit().await?;
    Ok(changes)
}

/// Apply a leased row's records inside `tx` and mark it processed (which requires the lease
/// to still be ours).
async fn apply_and_complete(
    state: &AppState,
    tx: &WriteTx,
    leased: &Leased,
    records: Vec<Record>,
) -> Result<Vec<(CustomerId, ChangeKind)>, ProcessError> {
    let row = &leased.row;
    let changes = apply_records(state, tx, &leased.live.row, records, row.received_at, Some(InboxId(row.id))).await?;
    state.store.complete_inbox(tx, InboxId(row.id), row.leased_until).await?;
    Ok(changes)
}

/// What [`process_batch`] did with each row it took.
#[derive(Debug)]
pub enum BatchOutcome {
    /// Applied and marked processed; committed with the batch.
    Applied(Vec<(CustomerId, ChangeKind)>),
    /// Nothing of it was kept (it failed inside the batch, or the batch did not commit):
    /// run it alone with [`process`], which records its failure as usual.
    RunAlone,
}

/// A leased row, parsed and planned before the write transaction begins (parsing and key
/// normalisation need no lock).
enum Prepared<'a> {
    /// Its payload cannot be parsed: it runs alone, which records the failure.
    Unparsable,
    /// Only customer-bearing records: applied with its neighbours on the bulk path.
    Bulk(BulkEvent<'a>),
    /// Privacy records (erasure, data request, shop erasure): applied on its own, in order.
    Own,
}

fn prepare<'a>(state: &AppState, leased: &'a Leased) -> Prepared<'a> {
    let (live, row) = (&leased.live, &leased.row);
    let Ok(records) = leased.records() else {
        return Prepared::Unparsable;
    };
    if !records
        .iter()
        .all(|r| matches!(r, Record::Customer(_) | Record::Order(_) | Record::FormResponse(_) | Record::Message(_)))
    {
        return Prepared::Own;
    }
    let ctx = Context::new(&live.row, row.received_at, Some(InboxId(row.id)));
    let mut items = Vec::with_capacity(records.len());
    let mut thens = Vec::with_capacity(records.len());
    for record in records {
        if let Ok(p) = plan(&ctx, record) {
            items.push(BulkItem::new(&state.extractor, p.obs, ctx.region.clone()));
            thens.push(p.then);
        }
    }
    Prepared::Bulk(BulkEvent { connector: ctx.connector_id.to_string(), row, items, thens })
}

/// Process leased rows in one transaction, one commit for all of them. Consecutive rows
/// with only customer-bearing records form a segment applied on the bulk path
/// ([`apply_bulk`]) inside one savepoint; a row with privacy records is applied alone in its
/// own savepoint, in its place. If a segment fails, it is rolled back and its rows are
/// applied one by one, each inside its own savepoint together with its `processed` mark
/// (which requires the lease to still be ours), so a row that fails — bad payload, lost
/// lease, deadlock — is rolled back alone and the others still commit. Segments are taken
/// in order until `budget` has been spent or (SQLite) a webhook delivery waits for the
/// writer; returns the outcomes of the first `k` rows (at least one), the rest were not
/// touched.
pub async fn process_batch(
    state: &AppState,
    rows: &[(Arc<LiveConnector>, inbox::Model)],
    budget: std::time::Duration,
) -> Vec<BatchOutcome> {
    let leased: Vec<Leased> = rows.iter().map(|(live, row)| Leased::parsed(live.clone(), row.clone())).collect();
    process_batch_with(state, &leased, budget, usize::MAX).await
}

/// [`process_batch`] of rows already read, with at most `segment` rows per bulk segment.
pub async fn process_batch_with(
    state: &AppState,
    rows: &[Leased],
    budget: std::time::Duration,
    segment: usize,
) -> Vec<BatchOutcome> {
    let mut prepared: Vec<Option<Prepared<'_>>> = rows.iter().map(|leased| Some(prepare(state, leased))).collect();
    let started = std::time::Instant::now();
    let Ok(tx) = state.store.write().await else {
        return rows.iter().take(1).map(|_| BatchOutcome::RunAlone).collect();
    };
    let all_alone = |n: usize| (0..n).map(|_| BatchOutcome::RunAlone).collect::<Vec<_>>();
    let mut out: Vec<BatchOutcome> = Vec::with_capacity(rows.len());
    while out.len() < rows.len() {
        if !out.is_empty() && (started.elapsed() >= budget || state.inbox_writer.deliveries_waiting()) {
            break;
        }
        let k = out.len();
        match prepared[k].take() {
            None | Some(Prepared::Unparsable) => out.push(BatchOutcome::RunAlone),
            Some(Prepared::Own) => match one_in_savepoint(state, &tx, &rows[k]).await {
                Some(o) => out.push(o),
                None => return all_alone(k + 1),
            },
            Some(Prepared::Bulk(first)) => {
                let mut seg = vec![first];
                while seg.len() < segment.max(1) && k + seg.len() < rows.len() {
                    match prepared[k + seg.len()].take() {
                        Some(Prepared::Bulk(e)) => seg.push(e),
                        other => {
                            prepared[k + seg.len()] = other;
                            break;
                        }
                    }
                }
                let n = seg.len();
                let Ok(sp) = tx.savepoint().await else { return all_alone(k + n) };
                match apply_bulk(state, &sp, seg).await {
                    Ok(changes) => {
                        if sp.commit().await.is_err() {
                            return all_alone(k + n);
                        }
                        out.extend(changes.into_iter().map(BatchOutcome::Applied));
                    }
                    Err(e) => {
                        tracing::debug!(rows = n, error = %e, "inbox batch segment failed; applying its events one by one");
                        if sp.rollback().await.is_err() {
                            return all_alone(k + n);
                        }
                        for leased in &rows[k..k + n] {
                            match one_in_savepoint(state, &tx, leased).await {
                                Some(o) => out.push(o),
                                None => return all_alone(k + n),
                            }
                        }
                    }
                }
            }
        }
    }
    if let Err(e) = tx.commit().await {
        tracing::warn!(error = %e, rows = out.len(), "inbox batch did not commit; its events run alone");
        return all_alone(out.len());
    }
    out
}

/// Apply one row inside its own savepoint of `tx`, with its `processed` mark. `None` when
/// the transaction itself became unusable (nothing of the batch may be kept).
async fn one_in_savepoint(state: &AppState, tx: &WriteTx, leased: &Leased) -> Option<BatchOutcome> {
    let Ok(records) = leased.records() else {
        return Some(BatchOutcome::RunAlone);
    };
    let sp = tx.savepoint().await.ok()?;
    match apply_and_complete(state, &sp, leased, records).await {
        Ok(changes) => {
            sp.commit().await.ok()?;
            Some(BatchOutcome::Applied(changes))
        }
        Err(e) => {
            tracing::debug!(inbox_id = %InboxId(leased.row.id), error = %e, "inbox event failed in a batch; it runs alone next");
            sp.rollback().await.ok()?;
            Some(BatchOutcome::RunAlone)
        }
    }
}

/// What the records of one connector share while they are applied.
struct Context<'a> {
    conn: &'a connector::Model,
    connector_id: ConnectorId,
    source: SourceRef,
    region: Option<String>,
    mapping: Map<String, Value>,
    received_at: DateTime<Utc>,
}

impl<'a> Context<'a> {
    fn new(conn: &'a connector::Model, received_at: DateTime<Utc>, inbox_event: Option<InboxId>) -> Self {
        let connector_id = ConnectorId(conn.id);
        Self {
            conn,
            connector_id,
            source: SourceRef {
                source: conn.kind.clone(),
                connector_id: Some(connector_id),
                namespace: connector_id.to_string(),
                inbox_id: inbox_event.map(|i| i.0),
            },
            region: region_of(conn),
            mapping: conn.config.get("field_mapping").and_then(Value::as_object).cloned().unwrap_or_default(),
            received_at,
        }
    }
}

/// A customer-bearing record, split into the observation that resolves its customer and
/// what it writes once that customer is known.
struct Planned {
    obs: Observation,
    then: Then,
}

enum Then {
    /// A customer record: the observation is everything.
    Nothing,
    /// Upsert the order; a new one also gets an `order_placed` event.
    Order { order: OrderWrite, placed: TimelineEvent },
    /// Append one timeline event.
    Event(TimelineEvent),
}

/// A timeline event whose customer is still to be resolved (the placeholder id is
/// replaced by the record's customer).
fn timeline(ctx: &Context<'_>, kind: &str, at: DateTime<Utc>, properties: Value) -> TimelineEvent {
    TimelineEvent {
        customer: CustomerId(uuid::Uuid::nil()),
        kind: kind.to_string(),
        source: ctx.conn.kind.clone(),
        at,
        properties,
    }
}

/// Split a customer-bearing record; privacy records come back unchanged.
fn plan(ctx: &Context<'_>, record: Record) -> Result<Planned, Box<Record>> {
    let conn = ctx.conn;
    Ok(match record {
        Record::Customer(c) => {
            let mut obs = Observation::from_person(
                ctx.source.clone(),
                "customer",
                c.person.external_id.clone(),
                &c.person,
                c.updated_at,
            );
            obs.traits = c.traits;
            Planned { obs, then: Then::Nothing }
        }
        Record::Order(o) => {
            let at = o.updated_at.or(o.placed_at);
            let obs = Observation::from_person(ctx.source.clone(), "order", Some(o.external_id.clone()), &o.person, at);
            let currency = o.total.map(|m| m.currency.as_str().to_string());
            let props = json!({
                "orderId": o.external_id, "status": o.status,
                "totalMinor": o.total.map(|m| m.minor), "currency": currency,
                "connectorKind": conn.kind,
            });
            let placed = timeline(ctx, "order_placed", o.placed_at.unwrap_or(ctx.received_at), props);
            let order = OrderWrite {
                lines: serde_json::to_value(&o.lines).unwrap_or(Value::Array(vec![])),
                external_id: o.external_id,
                status: o.status,
                currency,
                total_minor: o.total.map(|m| m.minor),
                placed_at: o.placed_at,
                updated_at: o.updated_at,
            };
            Planned { obs, then: Then::Order { order, placed } }
        }
        Record::FormResponse(f) => {
            let mut obs = Observation::from_person(
                ctx.source.clone(),
                "form_response",
                Some(f.response_id.clone()),
                &f.person,
                f.submitted_at,
            );
            let mut answers = Map::new();
            for a in &f.answers {
                let key = a.field_ref.clone().unwrap_or_else(|| a.field_id.clone());
                let mapped = ctx.mapping.get(&key).or_else(|| ctx.mapping.get(&a.field_id)).and_then(Value::as_str);
                if let Some(trait_name) = mapped {
                    obs.traits.insert(trait_name.to_string(), a.value.clone());
                }
                if !matches!(a.field_type.as_str(), "email" | "phone_number") {
                    answers.insert(a.label.clone().unwrap_or(key), a.value.clone());
                }
            }
            let props = json!({"formId": f.form_id, "responseId": f.response_id, "answers": answers, "connectorKind": conn.kind});
            let event = timeline(ctx, "form_submitted", f.submitted_at.unwrap_or(ctx.received_at), props);
            Planned { obs, then: Then::Event(event) }
        }
        Record::Message(m) => {
            let obs = Observation::from_person(
                ctx.source.clone(),
                "message",
                Some(m.message_id.clone()),
                &m.person,
                m.sent_at,
            );
            let kind = match m.direction {
                Direction::Inbound => "message_received",
                Direction::Outbound => "message_sent",
            };
            let props =
                json!({"channel": m.channel, "messageId": m.message_id, "messageType": m.message_type, "text": m.text});
            let event = timeline(ctx, kind, m.sent_at.unwrap_or(ctx.received_at), props);
            Planned { obs, then: Then::Event(event) }
        }
        other => return Err(Box::new(other)),
    })
}

fn change_of(out: &IngestOutcome) -> (CustomerId, ChangeKind) {
    (out.customer_id, if out.created { ChangeKind::Created } else { ChangeKind::Updated })
}

/// Apply normalised records from `conn` inside the caller's transaction, one at a time:
/// resolve identities, upsert orders, append timeline events, honour privacy requests.
/// Webhook events (from the inbox) and pulled pages both come through here, so a record
/// means the same whichever way it arrived. `received_at` stands in for records without a
/// time of their own; `inbox_event` names the delivery a data request came from.
pub async fn apply_records(
    state: &AppState,
    tx: &WriteTx,
    conn: &connector::Model,
    records: Vec<Record>,
    received_at: DateTime<Utc>,
    inbox_event: Option<InboxId>,
) -> Result<Vec<(CustomerId, ChangeKind)>, ProcessError> {
    let ctx = Context::new(conn, received_at, inbox_event);
    let connector_id = ctx.connector_id;
    let store = &state.store;
    let extractor = &state.extractor;
    let mut changes = Vec::new();
    for record in records {
        let record = match plan(&ctx, record) {
            Ok(p) => {
                let out = store.ingest_tx(tx, extractor, &p.obs, ctx.region.as_deref()).await?;
                match p.then {
                    Then::Nothing => {}
                    Then::Order { order: o, mut placed } => {
                        let created = store.upsert_order(tx, out.customer_id, &connector_id.to_string(), o).await?;
                        if created {
                            placed.customer = out.customer_id;
                            store.append_events(tx, vec![placed]).await?;
                        }
                    }
                    Then::Event(mut e) => {
                        e.customer = out.customer_id;
                        store.append_events(tx, vec![e]).await?;
                    }
                }
                changes.push(change_of(&out));
                continue;
            }
            Err(record) => record,
        };
        match *record {
            Record::Erasure(p) => {
                let obs = Observation::from_person(ctx.source.clone(), "erasure", None, &p.person, p.requested_at);
                let keys: Vec<_> =
                    extractor.extract(&obs, ctx.region.as_deref()).keys.into_iter().map(|k| k.key).collect();
                let ids = store.customers_holding(tx, &keys).await?;
                store.erase_customers_tx(tx, &ids).await?;
                for id in ids {
                    changes.push((id, ChangeKind::Deleted));
                }
                tracing::info!(connector_id = %connector_id, "erasure request applied");
            }
            Record::DataRequest(p) => {
                let obs = Observation::from_person(ctx.source.clone(), "data_request", None, &p.person, p.requested_at);
                let keys: Vec<_> =
                    extractor.extract(&obs, ctx.region.as_deref()).keys.into_iter().map(|k| k.key).collect();
                for id in store.customers_holding(tx, &keys).await? {
                    let props = json!({"connectorKind": conn.kind, "inboxEventId": inbox_event.map(|i| i.to_string()), "export": "customerExport(id)"});
                    let mut e = timeline(&ctx, "privacy_data_request", p.requested_at.unwrap_or(received_at), props);
                    e.customer = id;
                    store.append_events(tx, vec![e]).await?;
                    changes.push((id, ChangeKind::Updated));
                }
            }
            Record::ShopErasure { .. } => {
                let n = store.erase_connector_data(tx, connector_id).await?;
                tracing::info!(connector_id = %connector_id, erased = n, "shop erasure applied");
            }
            // `plan` took every customer-bearing kind.
            Record::Customer(_) | Record::Order(_) | Record::FormResponse(_) | Record::Message(_) => {}
        }
    }
    Ok(changes)
}

/// The customer-bearing records of one inbox event, planned for [`apply_bulk`]: one bulk
/// item (keys already extracted) and one follow-up write per record.
struct BulkEvent<'a> {
    connector: String,
    row: &'a inbox::Model,
    items: Vec<BulkItem>,
    thens: Vec<Then>,
}

/// Apply the events of a batch segment together: every observation of every event is
/// resolved by one [`Store::ingest_bulk_tx`] (the same decisions as one at a time, in
/// order), then orders are folded in memory exactly as [`Store::upsert_order`] would apply
/// them one by one, and orders, timeline events and `processed` marks are written with a
/// few multi-row statements. Returns each event's changes, in order.
///
/// When a record merges away the customer of an earlier record of the segment, one-at-a-time
/// processing would have written that record's order or event first and the merge would
/// have moved it (and listed it in the merge ledger, for unmerge). This path writes orders
/// and events after resolution, so it refuses such a segment: the caller rolls it back and
/// applies its events one by one.
async fn apply_bulk(
    state: &AppState,
    tx: &WriteTx,
    events: Vec<BulkEvent<'_>>,
) -> Result<Vec<Vec<(CustomerId, ChangeKind)>>, ProcessError> {
    let store = &state.store;
    let extractor = &state.extractor;
    let mut items = Vec::new();
    let mut thens: Vec<(usize, Then)> = Vec::new();
    let mut done: Vec<(InboxId, Option<DateTime<Utc>>)> = Vec::with_capacity(events.len());
    let mut meta: Vec<String> = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        items.extend(e.items);
        thens.extend(e.thens.into_iter().map(|t| (i, t)));
        done.push((InboxId(e.row.id), e.row.leased_until));
        meta.push(e.connector);
    }
    let outcomes = if items.is_empty() { Vec::new() } else { store.ingest_bulk_tx(tx, extractor, &mut items).await? };
    if outcomes.len() != items.len() {
        return Err(ProcessError::Store(StoreError::Corrupt("bulk ingestion lost records".into())));
    }
    let mut seen: HashSet<CustomerId> = HashSet::new();
    for out in &outcomes {
        if out.merged.iter().any(|m| seen.contains(m)) {
            return Err(ProcessError::Store(StoreError::Conflict(
                "a record merged away the customer of an earlier record of the batch".into(),
            )));
        }
        seen.insert(out.customer_id);
    }

    // Orders: the stored versions, then every order record folded in order.
    let keys: Vec<(&str, &str)> = thens
        .iter()
        .filter_map(|(i, t)| match t {
            Then::Order { order, .. } => Some((meta[*i].as_str(), order.external_id.as_str())),
            _ => None,
        })
        .collect();
    let mut orders: HashMap<(String, String), (order::Model, bool, bool)> = HashMap::new();
    if !keys.is_empty() {
        for row in store.orders_by_source(tx, &keys).await? {
            orders.insert((row.connector_id.clone(), row.external_id.clone()), (row, false, false));
        }
    }
    let at = Utc::now().trunc_subsecs(6);
    let mut timeline_events = Vec::new();
    let mut changes: Vec<Vec<(CustomerId, ChangeKind)>> = vec![Vec::new(); done.len()];
    for ((i, then), out) in thens.into_iter().zip(&outcomes) {
        match then {
            Then::Nothing => {}
            Then::Event(mut e) => {
                e.customer = out.customer_id;
                timeline_events.push(e);
            }
            Then::Order { order: o, mut placed } => {
                let key = (meta[i].clone(), o.external_id.clone());
                match orders.get_mut(&key) {
                    None => {
                        let row = o.new_row(&key.0, out.customer_id, at);
                        orders.insert(key, (row, true, false));
                        placed.customer = out.customer_id;
                        timeline_events.push(placed);
                    }
                    Some((row, _, dirty)) => {
                        // As `upsert_order`: an older version never overwrites a newer one.
                        *dirty |= o.apply_to(row, out.customer_id, at);
                    }
                }
            }
        }
        changes[i].push(change_of(out));
    }
    let (mut new_orders, mut changed_orders) = (Vec::new(), Vec::new());
    for (row, new, dirty) in orders.into_values() {
        if new {
            new_orders.push(row);
        } else if dirty {
            changed_orders.push(row);
        }
    }
    // Deterministic statement order (uuid v7: creation order).
    new_orders.sort_by_key(|r| r.id);
    changed_orders.sort_by_key(|r| r.id);
    store.write_orders(tx, new_orders, changed_orders).await?;
    store.append_events(tx, timeline_events).await?;
    store.complete_inbox_many(tx, &done).await?;
    Ok(changes)
}
