//! The gateway's routes; each resource gets its own module with its own `router()`. What they
//! share: [`admission`] (the extractors that read, authenticate and admit a call), [`respond`]
//! (a call's outcome as a response) and [`error`] (refusals in the OpenAI error shape).

mod admission;
mod chat;
mod embeddings;
pub mod error;
mod models;
mod respond;

use std::sync::Arc;

use axum::Router;
use sb_runtime::Infra;

use crate::SERVICE;
use crate::core::Gateway;

pub fn router(infra: &Infra, gateway: Arc<Gateway>) -> Router {
    Router::new()
        .merge(chat::router())
        .merge(embeddings::router())
        .merge(models::router())
        .with_state(gateway)
        .merge(sb_runtime::health::router(SERVICE, infra))
}
