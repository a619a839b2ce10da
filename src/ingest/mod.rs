//! Ingestion: bulk import/export of flat records, and the webhook inbox pipeline
//! (runtime connectors, processing, workers).

pub mod flat;
pub mod import;
pub mod pipeline;
pub mod runtime;
mod thread_priority;
pub mod worker;

pub use flat::FlatRecord;
pub use import::{export_customers, import_file, ImportFormat, ImportSummary};
