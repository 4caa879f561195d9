//! The bus against real Redis and real Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod consumer;
mod crash;
mod helpers;
mod metrics;
mod outbox;
mod publish;
mod trace;
mod trim;
