//! Normalisation: the parse boundary between what a source sent and what identity
//! resolution compares.
//!
//! # Contract
//! - **Parse, don't validate.** Every normalised value is a type whose only constructor is a
//!   `parse` returning `Result`: [`Email::parse`], [`Phone::parse`], [`PersonName::parse`].
//!   Code past this boundary takes these types, never raw strings, so an unnormalised email
//!   or a phone without a country can't reach a key or a comparison.
//! - **Pure.** No I/O, no clock, no global mutable state. The only process-wide state is the
//!   phone metadata that `phonenumber` loads once (a lazy static); nothing compiles a regex
//!   per call. Safe to call from any thread.
//! - **No panics** on any input; errors are values.
//! - **Errors carry reasons, never the input.** Emails, phones and names are PII and errors
//!   get logged, so no error's `Display` or `Debug` includes the value.
//! - **Never a wrong identifier.** Where the input doesn't settle a value (a national phone
//!   number valid in two regions), the answer is an error with the reason
//!   ([`PhoneError::Ambiguous`]), never a guess. A key a caller gets back is one they can
//!   merge on.
//! - **Each type keeps the input as entered** (`raw()` / `display()`) next to its normalised
//!   form, so the golden record can show what people wrote.
//! - **Junk is policy, not syntax.** `test@example.com` is a valid address; whether it
//!   may identify someone is up to the configured [`JunkFilter`], which callers ask after
//!   parsing. The parsers don't consult it.
//!
//! # What each key is for
//! | type | stored identity value | matching key |
//! |---|---|---|
//! | [`Email`] | [`Email::as_str`] (trimmed, lowercased, punycode domain) | [`Email::canonical_key`] (`+tag` stripped, Gmail dots folded) |
//! | [`Phone`] | [`Phone::as_e164`] | the same; [`Phone::region`] feeds [`RegionHints::customer_regions`] for the customer's other numbers |
//! | [`PersonName`] | — (names are evidence, not identifiers) | [`PersonName::pinyin_key`], [`PersonName::tokens_key`], per-part keys |

mod email;
mod junk;
mod name;
mod phone;
mod phone_validity;

pub use email::{Email, EmailError};
pub use junk::{JunkFilter, DEFAULT_VALUES, JUNK_EMAIL_LOCALS};
pub use name::{NameError, NameScript, PersonName};
pub use phone::{warm_up as warm_up_phone_metadata, Phone, PhoneError, RegionHints, RegionSource};
