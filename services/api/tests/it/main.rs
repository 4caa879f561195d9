//! The api through its real HTTP stack, against real Postgres, Redis and an SMTP sink.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod auth;
mod graphql;
mod hardening;
mod input;
mod isolation;
mod jwt;
mod openapi;
mod resources;
mod roles;
mod support;
