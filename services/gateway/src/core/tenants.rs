//! What the gateway caches per tenant: its provider entries (secrets decrypted, in memory only)
//! and its budgets with their current periods ([`crate::core::budget`]). Read through
//! `TenantTx`, so row-level security applies; dropped by the invalidation channel when the
//! tenant changes them ([`crate::core::invalidation`]).

use foldhash::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sb_crypto::Keyring;
use sb_db::AppPool;
use sb_kernel::{ProviderCredentialId, TenantId};
use uuid::Uuid;

use crate::core::StoreError;
use crate::core::budget::{self, Budget};
use crate::core::providers::{ProviderKind, Upstream};

/// One provider entry of a tenant; shared (`Arc`), since a call holds on to the one it uses.
#[derive(Debug)]
pub struct ProviderEntry {
    pub id: ProviderCredentialId,
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

struct EntryRow {
    id: Uuid,
    name: String,
    provider: String,
    base_url: String,
    models: Vec<String>,
    secret_ciphertext: Option<Vec<u8>>,
    secret_key_id: Option<String>,
}

/// The per-tenant cache; cheap to clone.
#[derive(Clone)]
pub struct TenantCache {
    db: AppPool,
    keyring: Arc<Keyring>,
    ttl: Duration,
    /// The Redis key prefix, for [`budget::BudgetKeys`].
    prefix: Arc<str>,
    /// `PROVIDER_ALLOW_PRIVATE`: entries may name internal addresses.
    allow_private: bool,
    entries: Arc<RwLock<HashMap<TenantId, Arc<TenantState>>>>,
}

impl TenantCache {
    pub fn new(
        db: AppPool,
        keyring: Arc<Keyring>,
        ttl: Duration,
        prefix: &str,
        allow_private: bool,
    ) -> Self {
        Self {
            db,
            keyring,
            ttl,
            prefix: prefix.into(),
            allow_private,
            entries: Arc::default(),
        }
    }

    pub async fn get(&self, tenant: TenantId) -> Result<Arc<TenantState>, StoreError> {
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

    pub fn forget(&self, tenant: TenantId) {
        self.write().remove(&tenant);
    }

    pub fn clear(&self) {
        self.write().clear();
    }

    async fn load(&self, tenant: TenantId) -> Result<TenantState, StoreError> {
        let mut tx = self.db.begin(tenant).await?;
        let rows = sqlx::query_as!(
            EntryRow,
            "SELECT id, name, provider, base_url, models, secret_ciphertext, secret_key_id
               FROM provider_credentials WHERE enabled ORDER BY priority, name"
        )
        .fetch_all(&mut *tx)
        .await?;
        let budgets = budget::load(&mut tx, &self.prefix).await?;
        tx.commit().await?;

        let providers = rows
            .into_iter()
            .filter_map(|row| self.entry(row).map(Arc::new))
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
    /// and name only). So is one whose URL may not be called: credentials or a fragment in it,
    /// or an internal address literal (names are checked at connect time, by the client's
    /// resolver).
    fn entry(&self, row: EntryRow) -> Option<ProviderEntry> {
        let Some(kind) = ProviderKind::parse(&row.provider) else {
            tracing::error!(entry = %row.id, provider = %row.provider, "unknown provider; entry skipped");
            return None;
        };
        let callable = sb_egress::parse(&row.base_url)
            .and_then(|url| sb_egress::check_literal(&url, self.allow_private));
        if let Err(refused) = callable {
            tracing::error!(entry = %row.id, name = %row.name, %refused, "the provider URL may not be called (PROVIDER_ALLOW_PRIVATE); entry skipped");
            return None;
        }
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
            id: ProviderCredentialId::from_uuid(row.id),
            name: row.name,
            models: row.models,
            upstream: Upstream {
                kind,
                base_url: row.base_url,
                api_key,
            },
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TenantId, Arc<TenantState>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TenantId, Arc<TenantState>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}
