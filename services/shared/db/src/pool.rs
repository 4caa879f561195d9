//! Pools, one per role. They connect lazily, so a service starts (and `/health` answers) while
//! Postgres is still coming up; `/health/detailed` reports it down until it is reachable.

use std::str::FromStr;
use std::time::Duration;

use sb_config::DatabaseConfig;
use sb_kernel::TenantId;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::DbError;
use crate::tenant_tx::{GlobalTx, TenantTx};

/// Which role a pool connects as; used in errors and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    App,
    System,
}

impl Role {
    fn variable(self) -> &'static str {
        match self {
            Role::App => "DATABASE_URL",
            Role::System => "DATABASE_SYSTEM_URL",
        }
    }
}

/// A snapshot of a pool's use, for `/health/detailed` and `db_pool_connections{state}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

fn options(url: &str, role: Role) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(url)
        .map(|o| {
            o.application_name(&format!(
                "switchboard-{}",
                if role == Role::App { "app" } else { "system" }
            ))
        })
        .map_err(|source| DbError::BadUrl {
            variable: role.variable(),
            source,
        })
}

fn lazy_pool(url: &str, role: Role, config: &DatabaseConfig) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // Recycle idle connections so a Postgres failover is noticed without a restart.
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(options(url, role)?))
}

async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

fn stats(pool: &PgPool) -> PoolStats {
    let size = pool.size();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    PoolStats {
        size,
        idle,
        max: pool.options().get_max_connections(),
    }
}

/// The application role's pool. The inner pool is private: tenant data is reached only through
/// [`AppPool::begin`].
#[derive(Clone, Debug)]
pub struct AppPool(PgPool);

impl AppPool {
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Self, DbError> {
        lazy_pool(config.app_url.expose_secret(), Role::App, config).map(Self)
    }

    /// Connects now, so a wrong URL or a missing role fails here with a clear message.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        let pool = Self::connect_lazy(config)?;
        ping(&pool.0).await.map_err(|source| DbError::Connect {
            variable: Role::App.variable(),
            source,
        })?;
        Ok(pool)
    }

    /// A transaction in `tenant`'s context: every tenant table shows that tenant's rows only.
    pub async fn begin(&self, tenant: TenantId) -> Result<TenantTx, DbError> {
        TenantTx::begin(&self.0, tenant).await
    }

    /// A transaction with no tenant context, for global tables (`users`, `refresh_tokens`).
    /// Tenant tables read as empty here and refuse writes.
    pub async fn begin_global(&self) -> Result<GlobalTx, DbError> {
        GlobalTx::begin(&self.0).await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        ping(&self.0).await
    }

    pub fn stats(&self) -> PoolStats {
        stats(&self.0)
    }

    pub async fn close(&self) {
        self.0.close().await;
    }
}

/// The system role's pool, for audited cross-tenant work. It exposes the raw pool on purpose:
/// its grants and policies (migrations) are what keep it narrow.
#[derive(Clone, Debug)]
pub struct SystemPool(PgPool);

impl SystemPool {
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Self, DbError> {
        lazy_pool(config.system_url.expose_secret(), Role::System, config).map(Self)
    }

    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        let pool = Self::connect_lazy(config)?;
        ping(&pool.0).await.map_err(|source| DbError::Connect {
            variable: Role::System.variable(),
            source,
        })?;
        Ok(pool)
    }

    pub fn pool(&self) -> &PgPool {
        &self.0
    }

    pub fn stats(&self) -> PoolStats {
        stats(&self.0)
    }

    pub async fn close(&self) {
        self.0.close().await;
    }
}
