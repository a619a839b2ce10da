//! Integration tests through real HTTP (one binary, many modules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod cli;
mod customers;
mod health;
mod schema;
mod sync;
