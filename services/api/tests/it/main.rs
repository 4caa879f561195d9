//! The api through its real HTTP stack, against real Postgres, Redis and an SMTP sink.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod jwt;
mod resources;
mod support;
