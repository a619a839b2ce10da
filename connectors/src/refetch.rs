//! Reading a delivered event back from the platform's API — the translation half.
//!
//! Some platforms sign nothing (Jotform puts a shared token in the URL): whoever learns the
//! URL can post anything. A connector set up to re-fetch turns each such delivery into a
//! notice: the hub asks the platform's API for the event's subject and keeps only what the
//! platform answers. Like a [`crate::Puller`], a [`Refetch`] builds requests and parses
//! answers and does no I/O; the hub sends the request through
//! [`crate::http::PullClient`] (host policy, rate limit, retries) while it processes the
//! inbox row.

use crate::pull::{Endpoint, HttpRequest, HttpResponse, RateQuota};
use crate::{ParseError, Record, StoredEvent};

/// Why the platform's answer cannot stand for the delivery.
#[derive(Debug, thiserror::Error)]
pub enum RefetchError {
    /// The delivery names nothing the API can be asked for (no or a malformed id).
    #[error("delivery cannot be re-fetched: {0}")]
    Unaddressable(String),
    /// The platform does not confirm the delivery: the subject does not exist, was deleted,
    /// or belongs to something else than the delivery claimed. Retrying cannot help.
    #[error("the platform does not confirm this delivery: {0}")]
    Unconfirmed(String),
    /// The answer is not what the platform documents.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// A platform API that can read back what a delivery announced.
pub trait Refetch: Endpoint {
    /// The request rate allowed for re-fetches.
    fn quota(&self) -> RateQuota;

    /// The request that reads `event`'s subject back.
    fn request(&self, event: &StoredEvent) -> Result<HttpRequest, RefetchError>;

    /// The records to apply instead of the delivery's own, from a successful (2xx) answer.
    fn parse(&self, event: &StoredEvent, response: &HttpResponse) -> Result<Vec<Record>, RefetchError>;
}
