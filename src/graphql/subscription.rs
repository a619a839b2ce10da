use async_graphql::{Context, Enum, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio_stream_shim::BroadcastStream;

use super::error::ApiError;
use super::query::parse_customer_id;
use super::state;
use crate::ChangeKind;

#[derive(Default)]
pub struct Subscription;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CustomerChangeKind {
    Created,
    Updated,
    Merged,
    Deleted,
}

#[derive(SimpleObject, Clone)]
pub struct CustomerChangedEvent {
    pub customer_id: ID,
    pub change: CustomerChangeKind,
    pub at: DateTime<Utc>,
}

#[Subscription]
impl Subscription {
    /// Changes to customers, or to one customer when `id` is given.
    async fn customer_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<BoxStream<'static, CustomerChangedEvent>> {
        let only = id.map(|i| parse_customer_id(&i, "id")).transpose().map_err(ApiError::into_gql)?;
        let rx = state(ctx).changes.subscribe();
        Ok(BroadcastStream::new(rx)
            .filter_map(move |c| async move {
                let c = c.ok()?;
                if only.is_some_and(|o| o != c.customer_id) {
                    return None;
                }
                Some(CustomerChangedEvent {
                    customer_id: ID(c.customer_id.to_string()),
                    change: match c.kind {
                        ChangeKind::Created => CustomerChangeKind::Created,
                        ChangeKind::Updated => CustomerChangeKind::Updated,
                        ChangeKind::Merged => CustomerChangeKind::Merged,
                        ChangeKind::Deleted => CustomerChangeKind::Deleted,
                    },
                    at: c.at,
                })
            })
            .boxed())
    }
}

impl ApiError {
    pub fn into_gql(self) -> async_graphql::Error {
        self.into()
    }
}

/// A small adapter from a broadcast receiver to a stream (lagging receivers skip ahead).
mod tokio_stream_shim {
    use tokio::sync::broadcast;

    pub struct BroadcastStream;

    impl BroadcastStream {
        #[allow(clippy::new_ret_no_self)]
        pub fn new<T: Clone + Send + 'static>(
            rx: broadcast::Receiver<T>,
        ) -> impl futures::Stream<Item = Result<T, ()>> {
            futures::stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(v) => return Some((Ok(v), rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
        }
    }
}
