//! Test-only helpers (a dev-dependency only). Tests talk to real Postgres and real Redis:
//!
//! - [`TestDb`]: a fresh database per test, migrated as the owner, dropped afterwards; the
//!   services' pools connect to it as `switchboard_app` and `switchboard_system`, exactly as
//!   in production, so row-level security is really in force.
//! - [`TestRedis`]: a fresh key prefix per test on the shared Redis, cleaned up afterwards.
//! - [`spawn`]: runs a built service on its port 0 address until the handle is dropped.
//! - [`SmtpSink`]: a local SMTP server that keeps what it receives, a port of its own per test.
//! - [`usage_event`]: a usage event to publish or record.
//! - [`OtlpReceiver`], [`SentryReceiver`]: local receivers of exported spans and of Sentry
//!   events, decoded.
//!
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`, a role that may
//! create databases and roles) and `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) point
//! the tests elsewhere.

// Test helpers fail loudly: a panic here is a failed test with a clear message.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod db;
mod otlp;
mod private_redis;
mod redis_prefix;
mod sentry;
mod service;
mod smtp;
mod tenant;
mod usage;

pub use db::{TestDb, drop_database, owner_url_for};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use private_redis::PrivateRedis;
pub use redis_prefix::{TestRedis, redis_url};
pub use sentry::SentryReceiver;
pub use service::{RunningApp, spawn, test_config};
pub use smtp::{Mail, SmtpSink};
pub use tenant::{TestTenant, tenant};
pub use usage::usage_event;
