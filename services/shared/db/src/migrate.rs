//! Migrations, run as the owner role by `switchboard migrate` (and by the testkit for each
//! test database). Idempotent: applied migrations are skipped, and a changed migration file is
//! refused (its checksum no longer matches) rather than silently re-run.

use std::str::FromStr;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, Postgres};

use crate::error::DbError;

/// The migrations in `migrations/`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../../migrations");

/// What `migrate` did, for the command's output.
#[derive(Debug, Default)]
pub struct MigrationReport {
    pub created_database: bool,
    /// Descriptions of the migrations applied by this run, in order.
    pub applied: Vec<String>,
    /// How many were already applied before this run.
    pub already_applied: usize,
}

/// Creates the database if it is missing, then applies every pending migration.
pub async fn migrate(owner_url: &str) -> Result<MigrationReport, DbError> {
    let variable = "DATABASE_OWNER_URL";
    PgConnectOptions::from_str(owner_url).map_err(|source| DbError::BadUrl { variable, source })?;
    let mut report = MigrationReport::default();
    let exists = Postgres::database_exists(owner_url)
        .await
        .map_err(|source| DbError::Connect { variable, source })?;
    if !exists {
        Postgres::create_database(owner_url)
            .await
            .map_err(DbError::CreateDatabase)?;
        report.created_database = true;
    }
    let mut conn = PgConnection::connect(owner_url)
        .await
        .map_err(|source| DbError::Connect { variable, source })?;
    let before = applied_versions(&mut conn).await?;
    report.already_applied = before.len();
    MIGRATOR.run(&mut conn).await?;
    report.applied = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    conn.close().await?;
    Ok(report)
}

async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, DbError> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !table_exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *conn)
            .await?,
    )
}
