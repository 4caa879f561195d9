//! Telling the gateways that what they cached is stale: the api's half of key revocation, and of
//! every change to a tenant's provider entries, budgets or status. The gateways' half (the
//! subscription and the cache) lives in the gateway; the message format in
//! `sb_contracts::invalidation`.
//!
//! A message goes out only after the change has committed: a gateway that reloaded before the
//! commit would cache the old state again. If Redis is down the message is lost, and the
//! gateways' cache lifetime (`GATEWAY_KEY_CACHE_SECONDS`) still bounds the staleness.

use sb_contracts::invalidation::{Invalidation, channel};
use sb_kernel::{ApiKeyId, TenantId};

use crate::state::ApiState;

/// What a committed change in a tenant made stale.
#[derive(Clone, Debug)]
pub enum Stale {
    /// The tenant itself, its provider entries or its budgets.
    Tenant,
    /// These API keys (revoked, or deleted with their workspace).
    ApiKeys(Vec<ApiKeyId>),
}

/// Tells every gateway to drop what it cached of `tenant` that `stale` names. Call it after the
/// commit.
pub async fn publish(state: &ApiState, tenant: TenantId, stale: Stale) {
    match stale {
        Stale::Tenant => send(state, Invalidation::Tenant(tenant.as_uuid())).await,
        Stale::ApiKeys(keys) => {
            for key in keys {
                send(state, Invalidation::ApiKey(key.as_uuid())).await;
            }
        }
    }
}

async fn send(state: &ApiState, what: Invalidation) {
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
