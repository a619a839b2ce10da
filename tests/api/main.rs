//! Integration tests through real HTTP (one binary, many modules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod access;
mod bulk_load;
mod bulk_merges;
mod cli;
mod crash;
mod customers;
mod health;
mod identity;
mod refetch;
mod schema;
mod sync;
mod webhooks;
