//! The agent-worker's routes; each resource gets its own module with its own `router()`.

mod teams;

use std::sync::Arc;

use axum::Router;
use sb_runtime::Infra;

use crate::SERVICE;
use crate::core::worker::Worker;

pub fn router(infra: &Infra, worker: Arc<Worker>) -> Router {
    Router::new()
        .merge(teams::router(worker))
        .merge(sb_runtime::health::router(SERVICE, infra))
}
