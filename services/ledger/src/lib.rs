//! The ledger service: turns usage events into an exact, tenant-isolated spend record (its consumer arrives with the ledger issue).

mod routes;

use std::net::SocketAddr;

use sb_http::{App, Infra};

pub const SERVICE: &str = "ledger";

/// Binds the ledger on `addr` (port 0 picks a free port); `App::run` serves it.
pub async fn build(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    App::bind(
        SERVICE,
        addr,
        sb_http::standard_layers(routes::router(infra), SERVICE),
    )
    .await
}
