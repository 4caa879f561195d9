//! The gateway service: the OpenAI-compatible edge that authenticates, rate-limits, budgets,
//! routes and meters every model call (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`).

pub mod core;
mod routes;

use std::net::SocketAddr;

use sb_config::Config;
use sb_runtime::{App, Infra};

use crate::core::Gateway;

pub const SERVICE: &str = "gateway";

/// Binds the gateway on `addr` (port 0 picks a free port); `App::run` serves it, with the
/// cache-invalidation subscriber and the usage-buffer flusher beside it.
pub async fn build(infra: &Infra, config: &Config, addr: SocketAddr) -> std::io::Result<App> {
    let gateway = Gateway::new(infra, config)?;
    let router = routes::router(infra, gateway.clone());
    // The client's address, for the limit on unknown keys (`TRUSTED_PROXIES`).
    let router = sb_runtime::client_ip::layer(router, &config.trusted_proxies);
    let subscriber = core::invalidation::Subscriber::new(gateway.clone(), infra);
    let flusher = gateway.clone();
    Ok(
        App::bind(SERVICE, addr, sb_runtime::standard_layers(router, SERVICE))
            .await?
            .with_task(Box::new(move |shutdown| Box::pin(subscriber.run(shutdown))))
            .with_task(Box::new(move |shutdown| {
                Box::pin(async move { flusher.usage.run_flusher(shutdown).await })
            })),
    )
}
