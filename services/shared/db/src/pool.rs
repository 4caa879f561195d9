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

fn options(url: &str, role: Role, pgbouncer: bool) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(url)
        .map(|o| {
            let o = o.application_name(&format!(
                "switchboard-{}",
                if role == Role::App { "app" } else { "system" }
            ));
            // Behind PgBouncer in transaction mode a statement prepared in one transaction may
            // be missing (another server connection) in the next: cache none. sqlx still names
            // each statement, so every transaction also drops stray ones first (TenantTx).
            if pgbouncer {
                o.statement_cache_capacity(0)
            } else {
                o
            }
        })
        .map_err(|source| DbError::BadUrl {
            variable: role.variable(),
            source,
        })
}

fn lazy_pool(
    url: &str,
    role: Role,
    config: &DatabaseConfig,
    pgbouncer: bool,
) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // Recycle idle connections so a Postgres failover is noticed without a restart.
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(options(url, role, pgbouncer)?))
}

/// The simple query protocol: one message and one answer, so it is also safe outside a
/// transaction behind PgBouncer (a prepared statement's Parse and Execute could reach two
/// different server connections there).
async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SELECT 1").execute(pool).await.map(|_| ())
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
/// [`AppPool::begin`] and [`AppPool::begin_global`], so every query it runs is inside an
/// explicit transaction (which is what makes PgBouncer's transaction mode safe for it).
#[derive(Clone, Debug)]
pub struct AppPool {
    pool: PgPool,
    /// `DATABASE_PGBOUNCER`: each transaction starts by dropping stray prepared statements.
    pgbouncer: bool,
}

impl AppPool {
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Self, DbError> {
        lazy_pool(
            config.app_url.expose_secret(),
            Role::App,
            config,
            config.pgbouncer,
        )
        .map(|pool| Self {
            pool,
            pgbouncer: config.pgbouncer,
        })
    }

    /// Connects now, so a wrong URL or a missing role fails here with a clear message.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, DbError> {
        let pool = Self::connect_lazy(config)?;
        ping(&pool.pool).await.map_err(|source| DbError::Connect {
            variable: Role::App.variable(),
            source,
        })?;
        Ok(pool)
    }

    /// A transaction in `tenant`'s context: every tenant table shows that tenant's rows only.
    pub async fn begin(&self, tenant: TenantId) -> Result<TenantTx, DbError> {
        TenantTx::begin(&self.pool, self.pgbouncer, tenant).await
    }

    /// A transaction with no tenant context, for global tables (`users`, `refresh_tokens`).
    /// Tenant tables read as empty here and refuse writes.
    pub async fn begin_global(&self) -> Result<GlobalTx, DbError> {
        GlobalTx::begin(&self.pool, self.pgbouncer).await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        ping(&self.pool).await
    }

    pub fn stats(&self) -> PoolStats {
        stats(&self.pool)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The system role's pool, for audited cross-tenant work. It exposes the raw pool on purpose:
/// its grants and policies (migrations) are what keep it narrow. It connects to Postgres
/// directly, never through PgBouncer: the outbox relay LISTENs on it and some of its queries
/// run outside a transaction (docs/architecture.md, "Tenancy").
#[derive(Clone, Debug)]
pub struct SystemPool(PgPool);

impl SystemPool {
    pub fn connect_lazy(config: &DatabaseConfig) -> Result<Self, DbError> {
        lazy_pool(
            config.system_url.expose_secret(),
            Role::System,
            config,
            false,
        )
        .map(Self)
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
