//! The ledger against real Postgres (application and system roles) and real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alerts;
mod consumer;
mod helpers;
mod live_usage;
mod partitions;
mod prices;
mod reconcile;
mod record;
