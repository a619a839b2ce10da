//! Ingestion: bulk import of flat records, export; the webhook inbox pipeline lands here too.

pub mod flat;
pub mod import;

pub use flat::FlatRecord;
pub use import::{export_customers, import_file, ImportFormat, ImportSummary};
