//! Batch loading without N+1: every customer object of one result (a page, or a single
//! customer) shares a [`PageBatch`]. The first resolver that needs a relation loads it for
//! the whole page in one query; the others read from it. Unlike a time-window DataLoader
//! this does not depend on scheduling, so "one query per relation per page" always holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::store::entities::{consent, event, identity, order};
use crate::store::{Cursor, Store, StoreResult};

type Rows<T> = HashMap<Uuid, Vec<T>>;
type EventWindow = (u64, Option<(i64, Uuid)>);

pub struct PageBatch {
    store: Store,
    ids: Vec<Uuid>,
    identities: OnceCell<Rows<identity::Model>>,
    orders: OnceCell<Rows<order::Model>>,
    tags: OnceCell<HashMap<Uuid, Vec<String>>>,
    consents: OnceCell<Rows<consent::Model>>,
    events: Mutex<HashMap<EventWindow, Arc<OnceCell<Rows<event::Model>>>>>,
}

impl PageBatch {
    pub fn new(store: Store, ids: Vec<Uuid>) -> Arc<Self> {
        Arc::new(Self {
            store,
            ids,
            identities: OnceCell::new(),
            orders: OnceCell::new(),
            tags: OnceCell::new(),
            consents: OnceCell::new(),
            events: Mutex::new(HashMap::new()),
        })
    }

    pub async fn identities(&self, id: Uuid) -> StoreResult<Vec<identity::Model>> {
        let all = self.identities.get_or_try_init(|| self.store.identities_of(&self.ids)).await?;
        Ok(all.get(&id).cloned().unwrap_or_default())
    }

    pub async fn orders(&self, id: Uuid) -> StoreResult<Vec<order::Model>> {
        let all = self.orders.get_or_try_init(|| self.store.orders_of(&self.ids)).await?;
        Ok(all.get(&id).cloned().unwrap_or_default())
    }

    pub async fn tags(&self, id: Uuid) -> StoreResult<Vec<String>> {
        let all = self.tags.get_or_try_init(|| self.store.tags_of(&self.ids)).await?;
        Ok(all.get(&id).cloned().unwrap_or_default())
    }

    pub async fn consents(&self, id: Uuid) -> StoreResult<Vec<consent::Model>> {
        let all = self.consents.get_or_try_init(|| self.store.consents_of(&self.ids)).await?;
        Ok(all.get(&id).cloned().unwrap_or_default())
    }

    /// The newest `limit + 1` events of `id` older than `before`; customers asking for
    /// the same window share one query.
    pub async fn events(&self, id: Uuid, limit: u64, before: Option<Cursor>) -> StoreResult<Vec<event::Model>> {
        let window = (limit, before.map(|c| (c.at.timestamp_micros(), c.id)));
        let cell = {
            let mut map = self.events.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(window).or_insert_with(|| Arc::new(OnceCell::new())).clone()
        };
        let all = cell.get_or_try_init(|| self.store.events_of(&self.ids, limit, before)).await?;
        Ok(all.get(&id).cloned().unwrap_or_default())
    }
}
