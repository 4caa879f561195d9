//! The api service: REST, GraphQL and socket.io for tenants and the dashboard (its routes arrive with the api issue).

mod routes;

use std::net::SocketAddr;

use sb_bus::OutboxRelay;
use sb_http::{App, Infra};

pub const SERVICE: &str = "api";

/// Binds the api on `addr` (port 0 picks a free port); `App::run` serves it.
pub async fn build(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    let app = App::bind(
        SERVICE,
        addr,
        sb_http::standard_layers(routes::router(infra), SERVICE),
    )
    .await?;
    // Rows committed to the outbox (agent jobs) reach the bus through this relay.
    let relay = OutboxRelay::new(infra.system_db.clone(), infra.bus.clone());
    Ok(app.with_task(Box::new(move |shutdown| Box::pin(relay.run(shutdown)))))
}
