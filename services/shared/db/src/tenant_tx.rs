//! `TenantTx`: a transaction bound to one tenant.
//!
//! It begins a transaction and sets `app.tenant_id` with `set_config(…, true)`, which is
//! transaction-local: the setting ends with the transaction, so a pooled connection (or a
//! PgBouncer server connection in transaction mode) never carries one tenant's context into
//! another's work. Forgetting to commit rolls back on drop, which also clears the context.

use std::ops::{Deref, DerefMut};

use sb_kernel::TenantId;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::error::DbError;

/// A transaction in one tenant's context. Deref to `PgConnection` to run queries:
/// `sqlx::query(…).execute(&mut *tx)`.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl TenantTx {
    pub(crate) async fn begin(pool: &PgPool, tenant: TenantId) -> Result<Self, DbError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx, tenant })
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        Ok(self.tx.rollback().await?)
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// A transaction with no tenant context, for the global tables. Row-level security makes
/// every tenant table empty and read-only here.
pub struct GlobalTx {
    tx: Transaction<'static, Postgres>,
}

impl GlobalTx {
    pub(crate) async fn begin(pool: &PgPool) -> Result<Self, DbError> {
        Ok(Self {
            tx: pool.begin().await?,
        })
    }

    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }
}

impl Deref for GlobalTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for GlobalTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
