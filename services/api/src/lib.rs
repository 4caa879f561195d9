//! The api service: REST, GraphQL and socket.io for tenants and the dashboard (its routes arrive with the api issue).

mod routes;

use std::net::SocketAddr;

use sb_http::{App, Infra};

pub const SERVICE: &str = "api";

/// Binds the api on `addr` (port 0 picks a free port); `App::run` serves it.
pub async fn build(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    App::bind(
        SERVICE,
        addr,
        sb_http::standard_layers(routes::router(infra), SERVICE),
    )
    .await
}
