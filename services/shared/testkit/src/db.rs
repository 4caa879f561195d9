//! A database per test.

use std::str::FromStr;
use std::time::Duration;

use sb_config::DatabaseConfig;
use sb_db::AppPool;
use secrecy::SecretString;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

fn server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The test server's URL as its owner role, for a database of that name: for tests of
/// commands that create their own database (drop it with [`drop_database`]).
pub fn owner_url_for(database: &str) -> String {
    let owner = PgConnectOptions::from_str(&server_url())
        .expect("TEST_POSTGRES_URL")
        .get_username()
        .to_owned();
    url_for(&owner, database)
}

/// Drops a database, terminating its connections.
pub async fn drop_database(name: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(&server_url()).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// `url` with another user and database (keeping host, port and TLS settings).
fn url_for(user: &str, database: &str) -> String {
    let options =
        PgConnectOptions::from_str(&server_url()).expect("TEST_POSTGRES_URL is not a Postgres URL");
    options
        .username(user)
        .database(database)
        .to_url_lossy()
        .to_string()
}

pub struct TestDb {
    pub name: String,
    owner_url: String,
}

impl TestDb {
    /// Creates and migrates a fresh database.
    pub async fn new() -> Self {
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        let owner_url = owner_url_for(&name);
        let report = sb_db::migrate(&owner_url)
            .await
            .unwrap_or_else(|e| panic!("migrating the test database {name}: {e}"));
        assert!(report.created_database);
        Self { name, owner_url }
    }

    /// The configuration a service gets: the application and system roles on this database.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            app_url: SecretString::from(self.app_url()),
            system_url: SecretString::from(url_for("switchboard_system", &self.name)),
            owner_url: SecretString::from(self.owner_url.clone()),
            max_connections: 5,
            acquire_timeout: Duration::from_secs(5),
            pgbouncer: false,
        }
    }

    pub fn app_url(&self) -> String {
        url_for("switchboard_app", &self.name)
    }

    pub fn owner_url(&self) -> &str {
        &self.owner_url
    }

    /// The application role's pool, as the services use it.
    pub async fn app_pool(&self) -> AppPool {
        AppPool::connect(&self.config())
            .await
            .expect("connecting as switchboard_app")
    }

    /// A plain pool as `role`, to prove what that role can and cannot do with raw SQL.
    pub async fn raw_pool_as(&self, role: &str) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&url_for(role, &self.name))
            .await
            .unwrap_or_else(|e| panic!("connecting as {role}: {e}"))
    }

    /// The owner's connection, for test setup that must bypass the application (use sparingly:
    /// a test that proves isolation must not use it for the proof).
    pub async fn owner(&self) -> PgConnection {
        PgConnection::connect(&self.owner_url)
            .await
            .expect("connecting as the owner")
    }
}

impl Drop for TestDb {
    /// Drops the database on a separate thread (Drop cannot await), terminating the test's
    /// leftover connections. A failure only leaves a stray database behind; it is reported.
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&name))?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}
