//! The api through its real HTTP stack, against real Postgres, Redis and an SMTP sink.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod agents;
mod api_keys;
mod approvals;
mod audit_log;
mod auth;
mod budgets;
mod credentials;
mod erasure;
mod fuzz;
mod graphql;
mod hardening;
mod input;
mod invitations;
mod isolation;
mod jwt;
mod members;
mod openapi;
mod prices;
mod realtime;
mod roles;
mod support;
mod usage;
mod usage_summary;
mod web;
mod webhook_upkeep;
mod webhooks;
mod workspaces;
