//! Identity resolution, as pure code: normalise what a source says about a person into
//! identity keys, decide which customer it belongs to, and compute the golden record.
//! `store` applies the decisions; nothing here does I/O.

pub mod evaluate;
pub mod keys;
pub mod normalize;
pub mod observation;
pub mod rules;
pub mod survivorship;

pub use keys::{IdentityKey, IdentityKind, KeyExtractor, RejectedIdentifier};
pub use observation::{Observation, Profile, RawIdentifier, SourceRef};
pub use rules::{plan, Plan, Rules, Target};
pub use survivorship::{golden_record, GoldenRecord};
