//! DataLoaders: a page of customers with identities, tags, orders and events costs one
//! query per relation, however many customers the page holds.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use crate::store::entities::{event, identity, order};
use crate::store::{Cursor, Store, StoreError};

pub struct IdentityLoader(pub Store);
pub struct OrderLoader(pub Store);
pub struct TagLoader(pub Store);
pub struct EventLoader(pub Store);

/// One customer's page of events: the newest `limit + 1` older than `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventsKey {
    pub customer: Uuid,
    pub limit: u64,
    pub before: Option<(i64, Uuid)>,
}

type LoadResult<V> = Result<HashMap<Uuid, V>, Arc<StoreError>>;

impl Loader<Uuid> for IdentityLoader {
    type Value = Vec<identity::Model>;
    type Error = Arc<StoreError>;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        self.0.identities_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<Uuid> for OrderLoader {
    type Value = Vec<order::Model>;
    type Error = Arc<StoreError>;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        self.0.orders_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<Uuid> for TagLoader {
    type Value = Vec<String>;
    type Error = Arc<StoreError>;
    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        self.0.tags_of(keys).await.map_err(Arc::new)
    }
}

impl Loader<EventsKey> for EventLoader {
    type Value = Vec<event::Model>;
    type Error = Arc<StoreError>;
    async fn load(&self, keys: &[EventsKey]) -> Result<HashMap<EventsKey, Self::Value>, Self::Error> {
        // Keys asking for the same window share one query.
        let mut groups: HashMap<(u64, Option<(i64, Uuid)>), Vec<Uuid>> = HashMap::new();
        for k in keys {
            groups.entry((k.limit, k.before)).or_default().push(k.customer);
        }
        let mut out = HashMap::new();
        for ((limit, before), customers) in groups {
            let cursor = before.and_then(|(micros, id)| chrono::DateTime::from_timestamp_micros(micros).map(|at| Cursor { at, id }));
            let mut rows = self.0.events_of(&customers, limit, cursor).await.map_err(Arc::new)?;
            for c in customers {
                out.insert(EventsKey { customer: c, limit, before }, rows.remove(&c).unwrap_or_default());
            }
        }
        Ok(out)
    }
}
