//! The api service: accounts, tenancy, keys, provider credentials, budgets, usage and audit
//! over REST (OpenAPI 3.1 at `/openapi.json`, docs at `/docs`) and GraphQL (`/graphql`).
//!
//! - `routes/`: thin REST handlers, one module per resource;
//! - `graphql/`: the GraphQL schema, resolving through the same `core` functions;
//! - `core/`: the logic, free of HTTP types;
//! - `extract`: authentication and the one place roles are checked;
//! - `hardening`: security headers, CORS, body limit, timeout.
//! - `web`: the embedded dashboard at `/` (the router's fallback).

pub mod core;
pub mod error;
pub mod extract;
mod graphql;
mod hardening;
mod nul;
pub mod realtime;
pub mod routes;
pub mod state;
mod web;

use std::net::SocketAddr;

use sb_bus::OutboxRelay;
use sb_config::Config;
use sb_runtime::{App, Infra};

pub use state::ApiState;

pub const SERVICE: &str = "api";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mail(#[from] core::mail::MailError),
    #[error(transparent)]
    Realtime(#[from] realtime::RealtimeError),
}

/// Binds the api on `addr` (port 0 picks a free port); `App::run` serves it.
pub async fn build(infra: &Infra, config: &Config, addr: SocketAddr) -> Result<App, BuildError> {
    let state = ApiState::new(infra, config)?;
    // Webhook deliveries and budget-alert e-mail (core::webhooks::sources).
    let webhooks = core::webhooks::sources::tasks(infra, &state, &config.webhooks, &config.bus)?;
    let (router, _) = routes::router(infra, state.clone());
    let (router, realtime) = realtime::Realtime::route(&state, config, router)?;
    let router = hardening::harden(
        router,
        &config.cors_origins,
        config.api.max_body_bytes,
        config.api.request_timeout,
    );
    // The client's address for rate limits and the audit log (`TRUSTED_PROXIES`).
    let router = sb_runtime::client_ip::layer(router, &config.trusted_proxies);
    let mut app = App::bind(SERVICE, addr, sb_runtime::standard_layers(router, SERVICE)).await?;
    for task in webhooks {
        app = app.with_task(task);
    }
    // Rows committed to the outbox (agent jobs) reach the bus through this relay.
    let relay = OutboxRelay::new(infra.system_db.clone(), infra.bus.clone());
    let app = app.with_task(Box::new(move |shutdown| Box::pin(relay.run(shutdown))));
    Ok(realtime.start(infra, config, app)?)
}
