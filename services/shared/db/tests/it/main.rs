//! The db crate's tests, against real Postgres. The isolation proofs connect as the
//! application role (`switchboard_app`), never as a superuser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod catalog;
mod fixtures;
mod isolation;
mod migrate;
mod pgbouncer;
mod tenant_tx;
