//! Postgres: connection pools per role, the migrator, and [`TenantTx`], the only way to reach
//! tenant data.
//!
//! Three roles, three entry points (docs/architecture.md, "Tenancy"):
//! - [`AppPool`] (`switchboard_app`): tenant data through [`TenantTx`]; global tables such as
//!   `users` through [`AppPool::begin_global`], where every tenant table reads as empty.
//! - [`SystemPool`] (`switchboard_system`): the few cross-tenant paths. Code that takes one is
//!   small and reviewed as such.
//! - [`migrate`] (the owner): migrations only.

mod error;
mod migrate;
mod pool;
pub mod prices;
mod tenant_tx;

pub use error::DbError;
pub use migrate::{APP_ROLE, MIGRATOR, MigrationReport, SYSTEM_ROLE, migrate, set_role_passwords};
pub use pool::{AppPool, PoolStats, SystemPool};
pub use tenant_tx::{GlobalTx, TenantTx};
