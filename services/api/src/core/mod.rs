//! The api's logic, free of HTTP types: REST handlers and GraphQL resolvers both call these.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod budgets;
pub mod credentials;
pub mod export;
pub mod mail;
pub mod me;
pub mod members;
pub mod ratelimit;
pub mod sessions;
pub mod tenants;
pub mod tokens;
pub mod usage;
pub mod validate;
pub mod workspaces;

use sb_contracts::invalidation::{Invalidation, channel};

use crate::state::ApiState;

/// Tells every gateway to drop what it cached (after the change has committed). If Redis is
/// down the gateways' cache lifetime (`GATEWAY_KEY_CACHE_SECONDS`) still bounds the staleness.
pub async fn invalidate(state: &ApiState, what: Invalidation) {
    let mut redis = state.infra.redis();
    let published: Result<i64, _> = redis::cmd("PUBLISH")
        .arg(channel(&state.prefix))
        .arg(what.encode())
        .query_async(&mut redis)
        .await;
    if let Err(e) = published {
        tracing::warn!(error = %e, message = what.encode(), "could not tell the gateways about a change; their caches expire on their own");
    }
}
