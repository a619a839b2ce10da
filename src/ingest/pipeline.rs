//! From a verified inbox event to customer data, in one transaction: parse with the
//! connector, resolve identities, upsert orders, append timeline events, honour privacy
//! requests, and mark the event processed. Several events can share one transaction
//! ([`process_batch`]), each in its own savepoint.

use chrono::{DateTime, Utc};
use junction_connectors::{Direction, Record, StoredEvent};
use serde_json::{json, Map, Value};

use super::runtime::{region_of, LiveConnector};
use crate::identity::{Observation, SourceRef};
use crate::ids::{ConnectorId, CustomerId, InboxId};
use crate::store::entities::{connector, inbox};
use crate::store::records::OrderWrite;
use crate::store::WriteTx;
use crate::{AppState, ChangeKind};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("connector unavailable: {0}")]
    Connector(String),
    #[error("payload could not be parsed: {0}")]
    Parse(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
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
    live: &LiveConnector,
    row: &inbox::Model,
) -> Result<Vec<(CustomerId, ChangeKind)>, ProcessError> {
    let records = live.connector.parse(&stored_event(row)).map_err(|e| ProcessError::Parse(e.to_string()))?;
    let tx = state.store.write().await?;
    let changes = apply_records(state, &tx, &live.row, records, row.received_at, Some(InboxId(row.id))).await?;
    state.store.complete_inbox(&tx, InboxId(row.id), row.leased_until).await?;
    tx.commit().await?;
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

/// Process leased rows in one transaction, one commit for all of them. Each row is applied
/// inside its own savepoint together with its `processed` mark (which requires the lease to
/// still be ours), so a row that fails — bad payload, lost lease, deadlock — is rolled back
/// alone and the others still commit. Rows are taken in order until `budget` has been spent
/// or (SQLite) a webhook delivery waits for the writer; returns the outcomes of the first `k`
/// rows (at least one), the rest were not touched.
pub async fn process_batch(
    state: &AppState,
    rows: &[(std::sync::Arc<LiveConnector>, inbox::Model)],
    budget: std::time::Duration,
) -> Vec<BatchOutcome> {
    let started = std::time::Instant::now();
    let Ok(tx) = state.store.write().await else {
        return rows.iter().take(1).map(|_| BatchOutcome::RunAlone).collect();
    };
    let mut out = Vec::with_capacity(rows.len());
    for (live, row) in rows {
        if !out.is_empty() && (started.elapsed() >= budget || state.inbox_writer.deliveries_waiting()) {
            break;
        }
        let Ok(records) = live.connector.parse(&stored_event(row)) else {
            out.push(BatchOutcome::RunAlone);
            continue;
        };
        let Ok(sp) = tx.savepoint().await else {
            // The transaction is unusable: keep nothing of this batch.
            out.push(BatchOutcome::RunAlone);
            return out.into_iter().map(|_| BatchOutcome::RunAlone).collect();
        };
        let applied = async {
            let changes = apply_records(state, &sp, &live.row, records, row.received_at, Some(InboxId(row.id))).await?;
            state.store.complete_inbox(&sp, InboxId(row.id), row.leased_until).await?;
            Ok::<_, ProcessError>(changes)
        }
        .await;
        match applied {
            Ok(changes) => match sp.commit().await {
                Ok(()) => out.push(BatchOutcome::Applied(changes)),
                Err(_) => {
                    out.push(BatchOutcome::RunAlone);
                    return out.into_iter().map(|_| BatchOutcome::RunAlone).collect();
                }
            },
            Err(e) => {
                tracing::debug!(inbox_id = %InboxId(row.id), error = %e, "inbox event failed in a batch; it runs alone next");
                if sp.rollback().await.is_err() {
                    out.push(BatchOutcome::RunAlone);
                    return out.into_iter().map(|_| BatchOutcome::RunAlone).collect();
                }
                out.push(BatchOutcome::RunAlone);
            }
        }
    }
    if let Err(e) = tx.commit().await {
        tracing::warn!(error = %e, rows = out.len(), "inbox batch did not commit; its events run alone");
        return out.into_iter().map(|_| BatchOutcome::RunAlone).collect();
    }
    out
}

/// Apply normalised records from `conn` inside the caller's transaction: resolve identities,
/// upsert orders, append timeline events, honour privacy requests. Webhook events (from the
/// inbox) and pulled pages both come through here, so a record means the same whichever
/// way it arrived. `received_at` stands in for records without a time of their own;
/// `inbox_event` names the delivery a data request came from.
pub async fn apply_records(
    state: &AppState,
    tx: &WriteTx,
    conn: &connector::Model,
    records: Vec<Record>,
    received_at: DateTime<Utc>,
    inbox_event: Option<InboxId>,
) -> Result<Vec<(CustomerId, ChangeKind)>, ProcessError> {
    let connector_id = ConnectorId(conn.id);
    let source = SourceRef {
        source: conn.kind.clone(),
        connector_id: Some(connector_id),
        namespace: connector_id.to_string(),
        inbox_id: inbox_event.map(|i| i.0),
    };
    let region = region_of(conn);
    let mapping = conn.config.get("field_mapping").and_then(Value::as_object).cloned().unwrap_or_default();
    let store = &state.store;
    let extractor = &state.extractor;
    let mut changes = Vec::new();
    for record in records {
        match record {
            Record::Customer(c) => {
                let mut obs = Observation::from_person(
                    source.clone(),
                    "customer",
                    c.person.external_id.clone(),
                    &c.person,
                    c.updated_at,
                );
                obs.traits = c.traits;
                let out = store.ingest_tx(tx, extractor, &obs, region.as_deref()).await?;
                changes.push((out.customer_id, if out.created { ChangeKind::Created } else { ChangeKind::Updated }));
            }
            Record::Order(o) => {
                let at = o.updated_at.or(o.placed_at);
                let obs = Observation::from_person(source.clone(), "order", Some(o.external_id.clone()), &o.person, at);
                let out = store.ingest_tx(tx, extractor, &obs, region.as_deref()).await?;
                let lines = serde_json::to_value(&o.lines).unwrap_or(Value::Array(vec![]));
                let created = store
                    .upsert_order(
                        tx,
                        out.customer_id,
                        OrderWrite {
                            connector: &connector_id.to_string(),
                            external_id: &o.external_id,
                            status: o.status.clone(),
                            currency: o.total.map(|m| m.currency.as_str().to_string()),
                            total_minor: o.total.map(|m| m.minor),
                            lines,
                            placed_at: o.placed_at,
                            updated_at: o.updated_at,
                        },
                    )
                    .await?;
                if created {
                    let props = json!({
                        "orderId": o.external_id, "status": o.status,
                        "totalMinor": o.total.map(|m| m.minor), "currency": o.total.map(|m| m.currency.as_str().to_string()),
                        "connectorKind": conn.kind,
                    });
                    store
                        .append_event(
                            tx,
                            out.customer_id,
                            "order_placed",
                            &conn.kind,
                            o.placed_at.unwrap_or(received_at),
                            props,
                        )
                        .await?;
                }
                changes.push((out.customer_id, if out.created { ChangeKind::Created } else { ChangeKind::Updated }));
            }
            Record::FormResponse(f) => {
                let mut obs = Observation::from_person(
                    source.clone(),
                    "form_response",
                    Some(f.response_id.clone()),
                    &f.person,
                    f.submitted_at,
                );
                let mut answers = Map::new();
                for a in &f.answers {
                    let key = a.field_ref.clone().unwrap_or_else(|| a.field_id.clone());
                    let mapped = mapping.get(&key).or_else(|| mapping.get(&a.field_id)).and_then(Value::as_str);
                    if let Some(trait_name) = mapped {
                        obs.traits.insert(trait_name.to_string(), a.value.clone());
                    }
                    if !matches!(a.field_type.as_str(), "email" | "phone_number") {
                        answers.insert(a.label.clone().unwrap_or(key), a.value.clone());
                    }
                }
                let out = store.ingest_tx(tx, extractor, &obs, region.as_deref()).await?;
                let props = json!({"formId": f.form_id, "responseId": f.response_id, "answers": answers, "connectorKind": conn.kind});
                store
                    .append_event(
                        tx,
                        out.customer_id,
                        "form_submitted",
                        &conn.kind,
                        f.submitted_at.unwrap_or(received_at),
                        props,
                    )
                    .await?;
                changes.push((out.customer_id, if out.created { ChangeKind::Created } else { ChangeKind::Updated }));
            }
            Record::Message(m) => {
                let obs = Observation::from_person(
                    source.clone(),
                    "message",
                    Some(m.message_id.clone()),
                    &m.person,
                    m.sent_at,
                );
                let out = store.ingest_tx(tx, extractor, &obs, region.as_deref()).await?;
                let kind = match m.direction {
                    Direction::Inbound => "message_received",
                    Direction::Outbound => "message_sent",
                };
                let props = json!({"channel": m.channel, "messageId": m.message_id, "messageType": m.message_type, "text": m.text});
                store
                    .append_event(tx, out.customer_id, kind, &conn.kind, m.sent_at.unwrap_or(received_at), props)
                    .await?;
                changes.push((out.customer_id, if out.created { ChangeKind::Created } else { ChangeKind::Updated }));
            }
            Record::Erasure(p) => {
                let obs = Observation::from_person(source.clone(), "erasure", None, &p.person, p.requested_at);
                let keys: Vec<_> = extractor.extract(&obs, region.as_deref()).keys.into_iter().map(|k| k.key).collect();
                let ids = store.customers_holding(tx, &keys).await?;
                store.erase_customers_tx(tx, &ids).await?;
                for id in ids {
                    changes.push((id, ChangeKind::Deleted));
                }
                tracing::info!(connector_id = %connector_id, "erasure request applied");
            }
            Record::DataRequest(p) => {
                let obs = Observation::from_person(source.clone(), "data_request", None, &p.person, p.requested_at);
                let keys: Vec<_> = extractor.extract(&obs, region.as_deref()).keys.into_iter().map(|k| k.key).collect();
                for id in store.customers_holding(tx, &keys).await? {
                    let props = json!({"connectorKind": conn.kind, "inboxEventId": inbox_event.map(|i| i.to_string()), "export": "customerExport(id)"});
                    store
                        .append_event(
                            tx,
                            id,
                            "privacy_data_request",
                            &conn.kind,
                            p.requested_at.unwrap_or(received_at),
                            props,
                        )
                        .await?;
                    changes.push((id, ChangeKind::Updated));
                }
            }
            Record::ShopErasure { .. } => {
                let n = store.erase_connector_data(tx, connector_id).await?;
                tracing::info!(connector_id = %connector_id, erased = n, "shop erasure applied");
            }
        }
    }
    Ok(changes)
}
