//! Junction's schema, one module per migration, backend-neutral (SQLite and PostgreSQL).

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_identity_rules;
mod m20261123_000003_sync;
mod m20261123_000004_access;
mod m20261124_000005_lean_identity_indexes;
mod m20261124_000006_set_aside_key_index;
mod m20261124_000007_no_json_statistics;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_identity_rules::Migration),
            Box::new(m20261123_000003_sync::Migration),
            Box::new(m20261123_000004_access::Migration),
            Box::new(m20261124_000005_lean_identity_indexes::Migration),
            Box::new(m20261124_000006_set_aside_key_index::Migration),
            Box::new(m20261124_000007_no_json_statistics::Migration),
        ]
    }
}
