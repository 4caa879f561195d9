//! The gateway service: the OpenAI-compatible edge: authenticates, rate-limits, budgets, routes and meters every model call (its /v1 routes arrive with the gateway issue).

pub mod core;
mod routes;

use std::net::SocketAddr;

use sb_http::{App, Infra};

pub const SERVICE: &str = "gateway";

/// Binds the gateway on `addr` (port 0 picks a free port); `App::run` serves it.
pub async fn build(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    App::bind(
        SERVICE,
        addr,
        sb_http::standard_layers(routes::router(infra), SERVICE),
    )
    .await
}
