//! The api through its real HTTP stack, against real Postgres, Redis and an SMTP sink.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod input;
mod isolation;
mod jwt;
mod openapi;
mod resources;
mod support;
