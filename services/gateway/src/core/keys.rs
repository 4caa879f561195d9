//! API keys: `sb_live_…` secrets, looked up by SHA-256 through an in-process cache.
//!
//! The lookup crosses tenants (the key names its tenant), so it runs as the system role. A hit
//! serves from memory for `GATEWAY_KEY_CACHE_SECONDS`; a revoked key is dropped from every
//! gateway's cache at once by the invalidation channel (`sb_contracts::invalidation`).
//!
//! Keys that do not exist go through [`UnknownKeys`] instead: remembered for a minute, and
//! limited per client IP, so that a flood of random keys cannot keep the database busy. The
//! order is: found keys (this cache), then remembered misses, then the per-IP limit, then the
//! database; so a key that exists is never held back by a cache of misses, and a revoked one
//! is never served by it. Every query is counted in `api_key_db_lookups_total`.

use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sb_auth::unknown_keys::{UnknownKeys, Verdict};
use sb_db::SystemPool;
use sb_kernel::{ApiKeyId, TenantId, WorkspaceId};
use uuid::Uuid;

/// What the gateway needs to know about a key and its tenant.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub workspace_id: Option<WorkspaceId>,
    /// Empty: every model the tenant's providers serve.
    pub allowed_models: Vec<String>,
    pub rpm_limit: Option<u32>,
    pub tpm_limit: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub tenant_active: bool,
    /// Serve when Redis is unreachable even though budgets cannot be checked.
    pub budget_fail_open: bool,
}

impl KeyInfo {
    /// Whether the key may be used now (not revoked, not expired, tenant not suspended).
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.tenant_active && self.expires_at.is_none_or(|at| at > now)
    }

    pub fn allows(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == model)
    }
}

struct KeyRow {
    id: Uuid,
    tenant_id: Uuid,
    workspace_id: Option<Uuid>,
    allowed_models: Vec<String>,
    rpm_limit: Option<i32>,
    tpm_limit: Option<i32>,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
    tenant_active: bool,
    budget_fail_open: bool,
}

type Entry = (Instant, Arc<KeyInfo>);

/// Cached keys per gateway before the cache sheds expired entries.
const MAX_ENTRIES: usize = 100_000;

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<KeyInfo>),
    /// No such key.
    Unknown,
    /// This client has presented too many unknown keys; it may try again after this long.
    TooMany(Duration),
}

/// The key cache; cheap to clone.
#[derive(Clone)]
pub struct KeyCache {
    db: SystemPool,
    ttl: Duration,
    entries: Arc<RwLock<HashMap<[u8; 32], Entry>>>,
    unknown: Arc<UnknownKeys>,
}

impl KeyCache {
    pub fn new(db: SystemPool, ttl: Duration) -> Self {
        Self {
            db,
            ttl,
            entries: Arc::default(),
            unknown: Arc::default(),
        }
    }

    /// The key whose secret hashes to `hash`, presented by `client`.
    pub async fn lookup(
        &self,
        hash: [u8; 32],
        client: Option<IpAddr>,
    ) -> Result<Lookup, sqlx::Error> {
        if let Some((at, info)) = self.read().get(&hash)
            && at.elapsed() < self.ttl
        {
            return Ok(Lookup::Found(info.clone()));
        }
        match self.unknown.check(&hash, client) {
            Verdict::LookUp => {}
            Verdict::Unknown => return Ok(Lookup::Unknown),
            Verdict::TooMany(wait) => return Ok(Lookup::TooMany(wait)),
        }
        match self.query(hash).await? {
            Some(info) => Ok(Lookup::Found(info)),
            None => {
                self.unknown.missed(hash, client);
                Ok(Lookup::Unknown)
            }
        }
    }

    /// Reads the key from Postgres and caches it when found.
    async fn query(&self, hash: [u8; 32]) -> Result<Option<Arc<KeyInfo>>, sqlx::Error> {
        metrics::counter!("api_key_db_lookups_total", "service" => "gateway").increment(1);
        let row = sqlx::query_as!(
            KeyRow,
            r#"SELECT k.id, k.tenant_id, k.workspace_id, k.allowed_models, k.rpm_limit, k.tpm_limit,
                      k.expires_at, k.revoked_at IS NOT NULL AS "revoked!",
                      t.status = 'active' AS "tenant_active!", t.budget_fail_open
                 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                WHERE k.key_hash = $1"#,
            &hash[..]
        )
        .fetch_optional(self.db.pool())
        .await?;
        let info = row.map(|r| {
            Arc::new(KeyInfo {
                id: ApiKeyId::from_uuid(r.id),
                tenant_id: TenantId::from_uuid(r.tenant_id),
                workspace_id: r.workspace_id.map(WorkspaceId::from_uuid),
                allowed_models: r.allowed_models,
                rpm_limit: r.rpm_limit.and_then(|n| u32::try_from(n).ok()),
                tpm_limit: r.tpm_limit.and_then(|n| u32::try_from(n).ok()),
                expires_at: r.expires_at,
                revoked: r.revoked,
                tenant_active: r.tenant_active,
                budget_fail_open: r.budget_fail_open,
            })
        });
        let Some(info) = info else {
            return Ok(None);
        };
        self.touch(info.id);
        let mut entries = self.write();
        if entries.len() >= MAX_ENTRIES {
            // Only keys that exist are here, so this takes that many keys in use within one
            // period: drop what has expired, and everything if that is not enough.
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash, (Instant::now(), info.clone()));
        Ok(Some(info))
    }

    /// Drops a key (revoked or changed) so the next request reads it again.
    pub fn forget_key(&self, key_id: ApiKeyId) {
        self.write().retain(|_, (_, info)| info.id != key_id);
    }

    /// Drops every key of a tenant (suspended, or its settings changed).
    pub fn forget_tenant(&self, tenant_id: TenantId) {
        self.write()
            .retain(|_, (_, info)| info.tenant_id != tenant_id);
    }

    pub fn clear(&self) {
        self.write().clear();
    }

    /// Records use, at most once per cache period per key (never on the request's path).
    fn touch(&self, key_id: ApiKeyId) {
        let db = self.db.clone();
        tokio::spawn(async move {
            let updated = sqlx::query!(
                "UPDATE api_keys SET last_used_at = now() WHERE id = $1",
                key_id.as_uuid()
            )
            .execute(db.pool())
            .await;
            if let Err(e) = updated {
                tracing::warn!(error = %e, %key_id, "could not record the key's last use");
            }
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}
