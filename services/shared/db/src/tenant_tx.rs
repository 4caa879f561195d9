//! `TenantTx`: a transaction bound to one tenant.
//!
//! It begins a transaction and sets `app.tenant_id` with `set_config(…, true)`, which is
//! transaction-local: the setting ends with the transaction, so a pooled connection (or a
//! PgBouncer server connection in transaction mode) never carries one tenant's context into
//! another's work. Forgetting to commit rolls back on drop, which also clears the context.
//! `BEGIN` and the setting travel in one message (one round trip): the tenant id is a UUID,
//! written by its own `Display`, so it can be part of the statement's text.
//!
//! Behind PgBouncer (`DATABASE_PGBOUNCER`) a transaction starts with `DEALLOCATE ALL`, in the
//! same message as `BEGIN`. sqlx names every prepared statement (`sqlx_s_1`, `sqlx_s_2`, … per
//! client connection) even with its cache off, and never closes uncached ones; the server
//! connection is shared by many clients whose counters all start at 1, so without this the
//! next client to prepare `sqlx_s_1` there fails with "prepared statement already exists".
//! Inside the transaction the server connection is ours alone, so statements prepared in it
//! stay valid until it ends.

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

/// Starts a transaction with `setup` run in the same message as `BEGIN`; behind PgBouncer,
/// on a server connection cleared of other clients' prepared statements.
async fn begin(
    pool: &PgPool,
    pgbouncer: bool,
    setup: &str,
) -> Result<Transaction<'static, Postgres>, DbError> {
    let deallocate = if pgbouncer { "DEALLOCATE ALL;" } else { "" };
    // Audited: `setup` is one of this module's fixed statements, with at most a UUID in it.
    let statement = sqlx::AssertSqlSafe(format!("BEGIN;{deallocate}{setup}"));
    Ok(pool.begin_with(statement).await?)
}

impl TenantTx {
    pub(crate) async fn begin(
        pool: &PgPool,
        pgbouncer: bool,
        tenant: TenantId,
    ) -> Result<Self, DbError> {
        // A `TenantId` displays as a hyphenated UUID: nothing in it can end the literal.
        let setup = format!("SELECT set_config('app.tenant_id', '{tenant}', true)");
        let tx = begin(pool, pgbouncer, &setup).await?;
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
    pub(crate) async fn begin(pool: &PgPool, pgbouncer: bool) -> Result<Self, DbError> {
        Ok(Self {
            tx: begin(pool, pgbouncer, "").await?,
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
