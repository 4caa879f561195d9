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

/// The services' roles, created by the first migration.
pub const APP_ROLE: &str = "switchboard_app";
pub const SYSTEM_ROLE: &str = "switchboard_system";

/// Sets the password of each service role from the URL the services log in with, when that
/// URL names the role and carries a password (compose, managed Postgres). A URL without one
/// (local trust authentication) leaves the role as it is. Returns the roles whose password was
/// set. Passwords travel as bound parameters and are quoted by Postgres, never by us.
pub async fn set_role_passwords(
    owner_url: &str,
    role_urls: &[(&str, &str)],
) -> Result<Vec<String>, DbError> {
    let variable = "DATABASE_OWNER_URL";
    let mut conn = PgConnection::connect(owner_url)
        .await
        .map_err(|source| DbError::Connect { variable, source })?;
    let mut set = Vec::new();
    for (role, url) in role_urls {
        let Some(password) = password_for(url, role) else {
            continue;
        };
        let statement = sqlx::query_scalar!(
            r#"SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text) AS "statement!""#,
            *role,
            password.as_str(),
        )
        .fetch_one(&mut conn)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await?;
        set.push((*role).to_owned());
    }
    conn.close().await?;
    Ok(set)
}

/// The password in `url`, percent-decoded, if the URL logs in as `role`.
fn password_for(url: &str, role: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.username() != role {
        return None;
    }
    let encoded = parsed.password()?;
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    (!decoded.is_empty()).then(|| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::password_for;

    #[test]
    fn passwords_are_read_only_for_the_named_role_and_decoded() {
        assert_eq!(
            password_for(
                "postgres://switchboard_app:p%40ss%27w@db:5432/switchboard",
                "switchboard_app"
            )
            .as_deref(),
            Some("p@ss'w")
        );
        assert_eq!(
            password_for(
                "postgres://switchboard_app@db/switchboard",
                "switchboard_app"
            ),
            None
        );
        assert_eq!(
            password_for("postgres://someone:pw@db/switchboard", "switchboard_app"),
            None
        );
        assert_eq!(password_for("not a url", "switchboard_app"), None);
    }
}
