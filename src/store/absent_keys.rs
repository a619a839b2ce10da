//! Which identity keys an import need not look up: a Bloom filter over the `key_hash` of
//! every identity the store held when the filter was primed and of every key the import
//! wrote since. A key the filter has never seen has no holder, so its lookup is skipped; a
//! key it may have seen is looked up as before. A 1M import asked the database for ~3.0M
//! keys and found 819 of them held (12.6 s of lookups): most keys are new.
//!
//! The filter is only as good as its knowledge of the store, so it is used only on the
//! import's own SQLite connection, under the writer lock, and only while no other
//! connection has committed since it was primed: SQLite's `PRAGMA data_version` changes on
//! a connection exactly when another connection commits. The first change (a webhook
//! written by a `junction serve` beside the import, say) turns the filter off for the rest
//! of the import, which then looks every key up.

use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult, Statement};

use super::StoreResult;

/// Bits in the filter: 16 MiB, whatever the import's size (memory stays flat). With 4
/// probes per key, a store of 3M keys gives a false positive (a lookup made for nothing)
/// about once in 19,000 keys; 30M keys, about one in 8.
const BITS: u64 = 1 << 27;
const PROBES: u64 = 4;

/// The filter is primed (the store's keys read in) only if the store holds at most this
/// many identity rows: 3.0M took 2.9 s, under the writer lock.
const PRIME_LIMIT: i64 = 4_000_000;

/// Looking a key up costs about this many times what reading one stored key into the filter
/// does (1M import: 3.0M keys looked up in 12.6 s; 3.0M stored keys read in 2.9 s).
const LOOKUP_TO_PRIME_COST: u64 = 4;

/// A Bloom filter over identity key digests.
pub(crate) struct KeyFilter {
    bits: Vec<u64>,
}

impl KeyFilter {
    fn new() -> Self {
        Self { bits: vec![0; (BITS / 64) as usize] }
    }

    /// The probes of a digest: its two halves, already uniform, combined as in
    /// Kirsch–Mitzenmacher double hashing.
    fn probes(hash: &uuid::Uuid) -> impl Iterator<Item = u64> {
        let (h1, h2) = hash.as_u64_pair();
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2 | 1)) % BITS)
    }

    pub(crate) fn insert(&mut self, hash: &uuid::Uuid) {
        for bit in Self::probes(hash) {
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// False only for a key never inserted.
    pub(crate) fn may_contain(&self, hash: &uuid::Uuid) -> bool {
        Self::probes(hash).all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

/// An import's knowledge of which keys the store holds (see the module's documentation).
#[derive(Default)]
pub(crate) struct AbsentKeys {
    state: State,
}

enum State {
    /// Not primed yet: the import has looked this many keys up so far. Priming pays once
    /// those lookups have cost what reading the store's keys would (a ski-rental rule): an
    /// import into an empty store primes at once, a small import into a large store never.
    Unprimed { looked_up: u64 },
    /// Primed; valid while the connection's `data_version` stays at this value.
    Primed { filter: Box<KeyFilter>, data_version: i64 },
    /// Another connection wrote, or the store was too large to prime.
    Off,
}

impl Default for State {
    fn default() -> Self {
        State::Unprimed { looked_up: 0 }
    }
}

#[derive(FromQueryResult)]
struct Version {
    data_version: i64,
}

#[derive(FromQueryResult)]
struct Rows {
    rows: Option<i64>,
}

#[derive(FromQueryResult)]
struct Hash {
    key_hash: uuid::Uuid,
}

async fn data_version(txn: &DatabaseTransaction) -> StoreResult<Option<i64>> {
    let sql = Statement::from_string(txn.get_database_backend(), "PRAGMA data_version");
    Ok(Version::find_by_statement(sql).one(txn).await?.map(|v| v.data_version))
}

/// Identity rows in the store, at most (SQLite's largest rowid: one index seek).
async fn identity_rows(txn: &DatabaseTransaction) -> StoreResult<i64> {
    let sql = Statement::from_string(txn.get_database_backend(), "SELECT MAX(rowid) AS rows FROM identities");
    Ok(Rows::find_by_statement(sql).one(txn).await?.and_then(|r| r.rows).unwrap_or(0))
}

/// A filter holding every identity key of the store.
async fn prime(txn: &DatabaseTransaction) -> StoreResult<Box<KeyFilter>> {
    let started = std::time::Instant::now();
    let mut filter = Box::new(KeyFilter::new());
    // Each arm reads its partial index alone (a covering scan).
    let sql = "SELECT key_hash FROM identities WHERE status = 'active' \
               UNION ALL SELECT key_hash FROM identities WHERE status <> 'active'";
    let mut held = Hash::find_by_statement(Statement::from_string(txn.get_database_backend(), sql)).stream(txn).await?;
    let mut keys = 0u64;
    while let Some(h) = held.next().await {
        filter.insert(&h?.key_hash);
        keys += 1;
    }
    tracing::debug!(keys, ms = started.elapsed().as_millis() as u64, "key filter primed");
    Ok(filter)
}

impl AbsentKeys {
    /// Bring the filter up to date at the start of a batch of `keys` keys, inside its write
    /// transaction (on the import's own connection, which holds SQLite's writer lock): prime
    /// it once priming pays, turn it off if another connection has committed since. Returns
    /// the filter when it may be used for this batch.
    pub(crate) async fn refresh(
        &mut self,
        txn: &DatabaseTransaction,
        keys: usize,
    ) -> StoreResult<Option<&mut KeyFilter>> {
        match &mut self.state {
            State::Off => {}
            State::Unprimed { looked_up } => {
                let rows = identity_rows(txn).await?;
                if rows > PRIME_LIMIT {
                    self.state = State::Off;
                } else if looked_up.saturating_mul(LOOKUP_TO_PRIME_COST) >= rows.unsigned_abs() {
                    self.state = match data_version(txn).await? {
                        Some(data_version) => State::Primed { filter: prime(txn).await?, data_version },
                        None => State::Off,
                    };
                } else {
                    *looked_up += keys as u64;
                }
            }
            State::Primed { data_version: primed, .. } => {
                if data_version(txn).await? != Some(*primed) {
                    tracing::debug!("another connection wrote: the key filter is off for the rest of the import");
                    self.state = State::Off;
                }
            }
        }
        Ok(match &mut self.state {
            State::Primed { filter, .. } => Some(filter),
            _ => None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::identity::normalize::JunkFilter;
    use crate::identity::{IdentityKey, IdentityKind, KeyExtractor, Observation, RawIdentifier, SourceRef};
    use crate::store::Store;

    fn person(email: &str) -> Observation {
        Observation {
            source: SourceRef { source: "t".into(), connector_id: None, namespace: "t".into(), inbox_id: None },
            record_id: Some(email.into()),
            record_kind: "customer".into(),
            identifiers: vec![RawIdentifier { kind: IdentityKind::Email, namespace: None, value: email.into() }],
            profile: Default::default(),
            traits: Default::default(),
            tags: vec![],
            occurred_at: None,
        }
    }

    fn email(v: &str) -> uuid::Uuid {
        IdentityKey { kind: IdentityKind::Email, namespace: String::new(), value: v.into() }.hash()
    }

    /// One batch on `store`: what the filter says of two keys, if it may be used.
    async fn batch(store: &Store, keys: &mut AbsentKeys) -> Option<[bool; 2]> {
        let tx = store.write().await.unwrap();
        let seen = keys
            .refresh(&tx.txn, 2)
            .await
            .unwrap()
            .map(|f| [f.may_contain(&email("before@fjord.no")), f.may_contain(&email("first@fjord.no"))]);
        tx.commit().await.unwrap();
        seen
    }

    /// With one key in the store, the first batch (two keys) looks its keys up; the second
    /// primes the filter with every key the store holds (the first batch's included). It
    /// turns off for good once another connection commits.
    #[tokio::test]
    async fn primed_from_the_store_and_off_once_another_connection_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()), 4).await.unwrap();
        store.migrate().await.unwrap();
        let x = KeyExtractor::new(JunkFilter::new(&[], &[]).unwrap(), vec![]);
        store.ingest(&x, &person("before@fjord.no"), None).await.unwrap();
        let loader = store.bulk_loader(8).await.unwrap();
        let mut keys = AbsentKeys::default();
        assert_eq!(batch(loader.store(), &mut keys).await, None, "priming does not pay yet");
        loader.store().ingest(&x, &person("first@fjord.no"), None).await.unwrap();
        assert_eq!(batch(loader.store(), &mut keys).await, Some([true, true]), "primed with the store's keys");
        assert_eq!(
            batch(loader.store(), &mut keys).await,
            Some([true, true]),
            "still valid: only this connection wrote"
        );
        store.ingest(&x, &person("beside@fjord.no"), None).await.unwrap();
        assert_eq!(batch(loader.store(), &mut keys).await, None, "another connection wrote");
        assert_eq!(batch(loader.store(), &mut keys).await, None, "and the filter stays off");
        loader.close().await;
    }

    #[test]
    fn a_key_inserted_is_never_absent() {
        let mut f = KeyFilter::new();
        let keys: Vec<uuid::Uuid> = (0..50_000).map(|_| uuid::Uuid::new_v4()).collect();
        for k in &keys {
            f.insert(k);
        }
        assert!(keys.iter().all(|k| f.may_contain(k)));
        // 50,000 keys in 2^27 bits: false positives are rare.
        let false_positives = (0..100_000).filter(|_| f.may_contain(&uuid::Uuid::new_v4())).count();
        assert!(false_positives < 10, "{false_positives}");
    }
}
