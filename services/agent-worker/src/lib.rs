//! The agent-worker service: runs agents, pausing for human approval (its loop arrives with the agent issue).

mod routes;

use std::net::SocketAddr;

use sb_runtime::{App, Infra};

pub const SERVICE: &str = "agent-worker";

/// Binds the agent-worker on `addr` (port 0 picks a free port); `App::run` serves it.
pub async fn build(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    App::bind(
        SERVICE,
        addr,
        sb_runtime::standard_layers(routes::router(infra), SERVICE),
    )
    .await
}
