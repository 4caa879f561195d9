//! End-to-end tests of the platform's spine: every service's health and metrics over real
//! HTTP against real Postgres and Redis, and the `switchboard` binary as operators run it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod backup;
mod cli;
mod dlq;
mod doctor;
mod health;
mod keys;
mod ledger_crash;
mod monitoring;
mod prices;
mod shutdown;
mod telemetry;
