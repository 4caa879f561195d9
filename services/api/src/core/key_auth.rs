//! Programs read a tenant's live events with one of its API keys (`sb_live_…`): the socket.io
//! handshake's `api_key` and the SSE stream's bearer. The key is checked as the gateway checks
//! it (its shape, then its SHA-256 from `sb_auth::api_key`); the lookup crosses tenants (the
//! key names its tenant), so it runs as the system role. Revoked and expired keys are refused;
//! a suspended tenant's keys may still read, as its members may.
//!
//! Keys that do not exist are remembered for a minute and limited per client IP, in the
//! order the gateway uses (`sb_auth::unknown_keys`): a flood of random keys makes at most a
//! bounded number of queries, each counted in `api_key_db_lookups_total{service="api"}`.
//! Found keys are never cached here, so a revoked key is refused at once.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sb_auth::unknown_keys::Verdict;
use sb_kernel::{ApiKeyId, TenantId};

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// A valid key and its tenant.
#[derive(Clone, Copy, Debug)]
pub struct KeyPrincipal {
    pub key: ApiKeyId,
    pub tenant: TenantId,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    Unknown,
    Revoked,
    Expired,
    /// Too many unknown keys from this client: retry after this many seconds.
    TooMany(u64),
}

impl KeyRefusal {
    /// The stable code (also the refusal metric's label).
    pub fn code(self) -> &'static str {
        match self {
            Self::Unknown => "invalid_api_key",
            Self::Revoked => "key_revoked",
            Self::Expired => "key_expired",
            Self::TooMany(_) => "rate_limited",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => "the API key is not valid",
            Self::Revoked => "the API key has been revoked",
            Self::Expired => "the API key has expired",
            Self::TooMany(_) => "too many unknown API keys from this address; try again later",
        }
    }

    pub fn into_error(self) -> ApiError {
        match self {
            Self::TooMany(seconds) => ApiError::too_many(seconds),
            _ => ApiError::unauthorized(self.code(), self.message()),
        }
    }
}

/// Looks `secret`, sent by `client`, up; the outer error is ours (the database), the inner one
/// the key's.
pub async fn authenticate(
    state: &ApiState,
    secret: &str,
    client: Option<IpAddr>,
) -> ApiResult<Result<KeyPrincipal, KeyRefusal>> {
    if !sb_auth::api_key::looks_valid(secret) {
        return Ok(Err(KeyRefusal::Unknown));
    }
    let hash = sb_auth::api_key::hash(secret);
    match state.unknown_keys.check(&hash, client) {
        Verdict::LookUp => {}
        Verdict::Unknown => return Ok(Err(KeyRefusal::Unknown)),
        Verdict::TooMany(wait) => return Ok(Err(KeyRefusal::TooMany(wait.as_secs().max(1)))),
    }
    metrics::counter!("api_key_db_lookups_total", "service" => "api").increment(1);
    let row = sqlx::query!(
        r#"SELECT id, tenant_id, expires_at, revoked_at IS NOT NULL AS "revoked!"
             FROM api_keys WHERE key_hash = $1"#,
        &hash[..]
    )
    .fetch_optional(state.infra.system_db.pool())
    .await?;
    let Some(row) = row else {
        state.unknown_keys.missed(hash, client);
        return Ok(Err(KeyRefusal::Unknown));
    };
    if row.revoked {
        return Ok(Err(KeyRefusal::Revoked));
    }
    if row.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Ok(Err(KeyRefusal::Expired));
    }
    Ok(Ok(KeyPrincipal {
        key: ApiKeyId::from_uuid(row.id),
        tenant: TenantId::from_uuid(row.tenant_id),
        expires_at: row.expires_at,
    }))
}

/// The key's tenant and whether it still works (after an invalidation names it): `None` when
/// it no longer exists.
pub async fn still_valid(state: &ApiState, key: ApiKeyId) -> ApiResult<Option<(TenantId, bool)>> {
    let row = sqlx::query!(
        r#"SELECT tenant_id, revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                  AS "valid!"
             FROM api_keys WHERE id = $1"#,
        key.as_uuid()
    )
    .fetch_optional(state.infra.system_db.pool())
    .await?;
    Ok(row.map(|r| (TenantId::from_uuid(r.tenant_id), r.valid)))
}
