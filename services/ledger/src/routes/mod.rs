//! The ledger's routes; each resource gets its own module with its own `router()`.

use axum::Router;
use sb_runtime::Infra;

use crate::SERVICE;

pub fn router(infra: &Infra) -> Router {
    Router::new().merge(sb_runtime::health::router(SERVICE, infra))
}
