//! What the gateway caches per tenant: its provider entries (secrets decrypted, in memory only)
//! and its budgets with their current periods. Read through `TenantTx`, so row-level security
//! applies; dropped by the invalidation channel when the tenant changes them.

use foldhash::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use sb_budget::{holds_key, leases_key, mirror_key};
use sb_crypto::Keyring;
use sb_db::AppPool;
use sb_kernel::TenantId;
use uuid::Uuid;

use crate::core::providers::{ProviderKind, Upstream};

/// One provider entry of a tenant; shared (`Arc`), since a call holds on to the one it uses.
#[derive(Debug)]
pub struct ProviderEntry {
    pub id: Uuid,
    pub name: String,
    /// Empty: serves any model name.
    pub models: Vec<String>,
    pub upstream: Upstream,
}

impl ProviderEntry {
    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

/// A budget as the policy decision needs it.
#[derive(Debug, Clone)]
pub struct Budget {
    pub id: Uuid,
    pub scope: String,
    /// The scoped workspace, key or run; None for the tenant scope.
    pub scope_id: Option<Uuid>,
    /// `daily`, `monthly` or `total`.
    pub period: String,
    pub limit_micros: i64,
    /// `block` refuses over the limit; `alert` only tells.
    pub blocks: bool,
    /// The current period's first day in the tenant's zone (the mirror's `period`).
    pub period_start: NaiveDate,
    /// When the current period ends; the cached state is reloaded then.
    pub period_end: Option<DateTime<Utc>>,
    /// Its names in Redis, made once per load rather than on every call.
    pub keys: Arc<BudgetKeys>,
}

/// A budget's keys in Redis and its current period as the mirror writes it (`YYYY-MM-DD`).
#[derive(Debug)]
pub struct BudgetKeys {
    pub mirror: String,
    pub holds: String,
    pub leases: String,
    pub period: String,
}

impl Budget {
    /// The rollup granularity that holds this budget's spend.
    pub fn granularity(&self) -> &'static str {
        match self.period.as_str() {
            "daily" => "day",
            "monthly" => "month",
            _ => "total",
        }
    }
}

/// A tenant's cached state.
#[derive(Debug)]
pub struct TenantState {
    pub providers: Vec<Arc<ProviderEntry>>,
    pub budgets: Vec<Budget>,
    loaded: Instant,
    /// The earliest period end among the budgets.
    expires: Option<DateTime<Utc>>,
}

impl TenantState {
    /// The entries that serve `model`, in routing order.
    pub fn routes(&self, model: &str) -> Vec<&Arc<ProviderEntry>> {
        self.providers.iter().filter(|p| p.serves(model)).collect()
    }

    /// Every model name the tenant's entries list, sorted.
    pub fn models(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .providers
            .iter()
            .flat_map(|p| p.models.iter().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Db(#[from] sb_db::DbError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    name: String,
    provider: String,
    base_url: String,
    models: Vec<String>,
    secret_ciphertext: Option<Vec<u8>>,
    secret_key_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct BudgetRow {
    id: Uuid,
    scope: String,
    scope_id: Option<Uuid>,
    period: String,
    limit_micros: i64,
    action: String,
    period_start: NaiveDate,
    period_end: Option<DateTime<Utc>>,
}

/// The per-tenant cache; cheap to clone.
#[derive(Clone)]
pub struct TenantCache {
    db: AppPool,
    keyring: Arc<Keyring>,
    ttl: Duration,
    /// The Redis key prefix, for [`BudgetKeys`].
    prefix: Arc<str>,
    entries: Arc<RwLock<HashMap<Uuid, Arc<TenantState>>>>,
}

impl TenantCache {
    pub fn new(db: AppPool, keyring: Arc<Keyring>, ttl: Duration, prefix: &str) -> Self {
        Self {
            db,
            keyring,
            ttl,
            prefix: prefix.into(),
            entries: Arc::default(),
        }
    }

    pub async fn get(&self, tenant: Uuid) -> Result<Arc<TenantState>, TenantError> {
        let cached = self.read().get(&tenant).cloned();
        if let Some(state) = cached
            && state.loaded.elapsed() < self.ttl
            && state.expires.is_none_or(|end| end > Utc::now())
        {
            return Ok(state);
        }
        // Boxed: the load's future is large (a transaction, two queries) and would otherwise
        // be part of every call's future, copied whole each time a layer moves it.
        let state = Arc::new(Box::pin(self.load(tenant)).await?);
        self.write().insert(tenant, state.clone());
        Ok(state)
    }

    pub fn forget(&self, tenant: Uuid) {
        self.write().remove(&tenant);
    }

    pub fn clear(&self) {
        self.write().clear();
    }

    async fn load(&self, tenant: Uuid) -> Result<TenantState, TenantError> {
        let mut tx = self.db.begin(TenantId::from_uuid(tenant)).await?;
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT id, name, provider, base_url, models, secret_ciphertext, secret_key_id
               FROM provider_credentials WHERE enabled ORDER BY priority, name",
        )
        .fetch_all(&mut *tx)
        .await?;
        let budgets: Vec<BudgetRow> = sqlx::query_as(
            "SELECT b.id, b.scope, b.scope_id, b.period, b.limit_micros, b.action,
                    p.period_start, p.period_end
               FROM budgets b
               JOIN tenants t ON t.id = b.tenant_id
              CROSS JOIN LATERAL budget_period(b.period, t.time_zone) p",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let providers = rows
            .into_iter()
            .filter_map(|row| self.entry(row).map(Arc::new))
            .collect();
        let budgets: Vec<Budget> = budgets
            .into_iter()
            .map(|b| Budget {
                keys: Arc::new(BudgetKeys {
                    mirror: mirror_key(&self.prefix, b.id),
                    holds: holds_key(&self.prefix, b.id),
                    leases: leases_key(&self.prefix, b.id),
                    period: b.period_start.to_string(),
                }),
                id: b.id,
                scope: b.scope,
                scope_id: b.scope_id,
                period: b.period,
                limit_micros: b.limit_micros,
                blocks: b.action == "block",
                period_start: b.period_start,
                period_end: b.period_end,
            })
            .collect();
        let expires = budgets.iter().filter_map(|b| b.period_end).min();
        Ok(TenantState {
            providers,
            budgets,
            loaded: Instant::now(),
            expires,
        })
    }

    /// Decrypts an entry's secret; an entry that cannot be used is skipped and logged (by id
    /// and name only).
    fn entry(&self, row: EntryRow) -> Option<ProviderEntry> {
        let Some(kind) = ProviderKind::parse(&row.provider) else {
            tracing::error!(entry = %row.id, provider = %row.provider, "unknown provider; entry skipped");
            return None;
        };
        let api_key = match (&row.secret_key_id, &row.secret_ciphertext) {
            (Some(key_id), Some(ciphertext)) => {
                match self.keyring.open_str(key_id, ciphertext, row.id.as_bytes()) {
                    Ok(secret) => Some(secret),
                    Err(e) => {
                        tracing::error!(entry = %row.id, name = %row.name, error = %e, "cannot decrypt the provider secret; entry skipped");
                        return None;
                    }
                }
            }
            _ => None,
        };
        Some(ProviderEntry {
            id: row.id,
            name: row.name,
            models: row.models,
            upstream: Upstream {
                kind,
                base_url: row.base_url,
                api_key,
            },
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Arc<TenantState>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Arc<TenantState>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}
