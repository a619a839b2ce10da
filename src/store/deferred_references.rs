//! PostgreSQL: references to customers that a bulk load checks once, at its end, instead
//! of row by row.
//!
//! PostgreSQL checks a foreign key with a trigger per inserted row: a query that finds
//! the customer and locks it against deletion (`FOR KEY SHARE`), which, for a customer
//! written by the same transaction, dirties its page again. An import writes about three
//! such rows per record (identities, its source record, tags); a profile of a 100k import
//! put those checks at a fifth of PostgreSQL's CPU. Dropping the three constraints for the
//! load and adding them back at its end, where `VALIDATE CONSTRAINT` checks every row in
//! one anti-join (1.2 s for three million identities), is PostgreSQL's own advice for
//! populating a database ("Remove Foreign Key Constraints").
//!
//! Nothing is left unchecked: the constraints come back `NOT VALID` first (enforced from
//! that moment on), then are validated; should the process die before that, the next
//! `migrate` does it ([`Store::ensure_references`]). While they are away, nothing relies
//! on their `ON DELETE` actions: every path that deletes customers deletes their
//! identities, tags and source records itself. Should a row still point at a customer
//! that is gone (a write racing a deletion), validation applies the action the constraint
//! would have applied (the row goes, or a source record forgets its customer) and says so
//! in a warning.
//!
//! SQLite keeps its constraints: it cannot drop one, and its check is a lookup in an
//! index the import has just written (tried: turning them off gained nothing measurable).

use sea_orm::{ConnectionTrait, Statement};

use super::{Store, StoreError, StoreResult};

/// A reference a bulk load may check at its end: its table, its name, its definition (as
/// migration 9 left it) and the statement applying its `ON DELETE` action to rows whose
/// customer is gone.
pub(crate) struct Reference {
    pub(crate) table: &'static str,
    pub(crate) name: &'static str,
    definition: &'static str,
    orphans: &'static str,
}

pub(crate) const DEFERRABLE: &[Reference] = &[
    Reference {
        table: "identities",
        name: "identities_customer_id_fkey",
        definition: "FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE \
                     DEFERRABLE INITIALLY DEFERRED",
        orphans: "DELETE FROM identities t WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer_id)",
    },
    Reference {
        table: "source_records",
        name: "source_records_customer_id_fkey",
        definition: "FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE SET NULL \
                     DEFERRABLE INITIALLY DEFERRED",
        orphans: "UPDATE source_records t SET customer_id = NULL WHERE t.customer_id IS NOT NULL \
                  AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer_id)",
    },
    Reference {
        table: "customer_tags",
        name: "customer_tags_customer_id_fkey",
        definition: "FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE \
                     DEFERRABLE INITIALLY DEFERRED",
        orphans: "DELETE FROM customer_tags t WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer_id)",
    },
];

/// Where a reference stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    /// Enforced for new rows, not yet checked for the rows before it.
    NotValid,
    Valid,
}

impl Store {
    /// Drop the deferrable references for a bulk load (PostgreSQL; nothing on SQLite).
    /// Returns the tables whose reference was dropped, for [`Store::ensure_references`]
    /// to check again when the load ends.
    pub async fn defer_references(&self) -> StoreResult<Vec<&'static str>> {
        if !self.is_postgres() {
            return Ok(vec![]);
        }
        let tx = self.write().await?;
        for r in DEFERRABLE {
            tx.txn.execute_unprepared(&format!("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", r.table, r.name)).await?;
        }
        tx.commit().await?;
        Ok(DEFERRABLE.iter().map(|r| r.table).collect())
    }

    /// Add back and validate every deferrable reference that is missing or not validated
    /// (PostgreSQL; cheap when all stand). Run by [`Store::migrate`], so a reference left
    /// dropped by a load that died is back at the next start.
    pub async fn ensure_references(&self) -> StoreResult<()> {
        if !self.is_postgres() {
            return Ok(());
        }
        for r in DEFERRABLE {
            match self.reference_state(r).await? {
                State::Valid => continue,
                State::Missing => {
                    // Enforced for every new row from here on, so no row it has not
                    // checked can appear while the old rows are validated.
                    let sql = format!("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID", r.table, r.name, r.definition);
                    match self.db.execute_unprepared(&sql).await {
                        // Another process (a start beside the load's end) added it first.
                        Err(e) if has_code(&e, DUPLICATE_OBJECT) => {}
                        other => {
                            other?;
                        }
                    }
                }
                State::NotValid => {}
            }
            self.validate_reference(r).await?;
        }
        Ok(())
    }

    /// `VALIDATE CONSTRAINT` (which lets writes go on meanwhile); if rows point at
    /// customers that are gone, apply the constraint's action to them and validate again.
    async fn validate_reference(&self, r: &Reference) -> StoreResult<()> {
        let validate = format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", r.table, r.name);
        match self.db.execute_unprepared(&validate).await {
            Ok(_) => return Ok(()),
            Err(e) if has_code(&e, FOREIGN_KEY_VIOLATION) => {}
            Err(e) => return Err(e.into()),
        }
        let fixed = self.db.execute_unprepared(r.orphans).await?.rows_affected();
        tracing::warn!(
            table = r.table,
            rows = fixed,
            "rows pointed at deleted customers while a load checked references at its end; their ON DELETE action \
             is applied now"
        );
        self.db.execute_unprepared(&validate).await?;
        Ok(())
    }

    async fn reference_state(&self, r: &Reference) -> StoreResult<State> {
        let sql = "SELECT convalidated FROM pg_constraint WHERE conname = $1 AND conrelid = to_regclass($2)";
        let row = self
            .db
            .query_one(Statement::from_sql_and_values(self.backend(), sql, [r.name.into(), r.table.into()]))
            .await?;
        Ok(match row {
            None => State::Missing,
            Some(row) => match row.try_get::<bool>("", "convalidated").map_err(StoreError::from)? {
                true => State::Valid,
                false => State::NotValid,
            },
        })
    }
}

/// PostgreSQL's SQLSTATE for `foreign_key_violation`.
const FOREIGN_KEY_VIOLATION: &str = "23503";
/// PostgreSQL's SQLSTATE for `duplicate_object` (a constraint of that name exists).
const DUPLICATE_OBJECT: &str = "42710";

/// Whether `e` is a PostgreSQL error with SQLSTATE `code`.
fn has_code(e: &sea_orm::DbErr, code: &str) -> bool {
    match e {
        sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sqlx_err))
        | sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(sqlx_err)) => {
            sqlx_err.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == code)
        }
        _ => false,
    }
}
