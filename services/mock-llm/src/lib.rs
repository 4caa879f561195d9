//! mock-llm: an offline upstream that speaks the OpenAI, Anthropic and Gemini wire formats,
//! streaming included, with deterministic token counts and injectable faults. The demo's
//! default provider, and the upstream of the gateway's tests and benchmarks.

pub mod core;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use sb_runtime::App;

pub use routes::MockState;
pub use routes::openai::MODELS;

pub const SERVICE: &str = "mock-llm";

/// Binds the mock on `addr` (port 0 picks a free port).
pub async fn build(addr: SocketAddr) -> std::io::Result<App> {
    let router = routes::router(Arc::new(MockState::default()))
        .merge(sb_runtime::health::router_without_dependencies(SERVICE));
    App::bind(SERVICE, addr, sb_runtime::standard_layers(router, SERVICE)).await
}
