//! sea-orm entities, one per table. Only `store` uses them.

pub mod api_key;
pub mod audit_log;
pub mod connector;
pub mod consent;
pub mod customer;
pub mod customer_tag;
pub mod erasure_receipt;
pub mod event;
pub mod identity;
pub mod inbox;
pub mod merge;
pub mod merge_candidate;
pub mod order;
pub mod source_record;
