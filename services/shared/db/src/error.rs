//! Errors from the db crate, named for what failed.

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "{variable} is not a valid Postgres URL ({source}): set it like postgres://USER:PASSWORD@HOST:5432/DATABASE"
    )]
    BadUrl {
        variable: &'static str,
        source: sqlx::Error,
    },
    #[error(
        "could not create the database named in DATABASE_OWNER_URL ({0}); create it by hand or give the owner role CREATEDB"
    )]
    CreateDatabase(#[source] sqlx::Error),
    #[error(
        "could not connect to Postgres with {variable} ({source}); is Postgres running, and does the role exist? (`switchboard migrate` creates the roles)"
    )]
    Connect {
        variable: &'static str,
        source: sqlx::Error,
    },
    #[error("a migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}
