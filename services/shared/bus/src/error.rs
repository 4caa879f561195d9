//! Errors from the bus, named for what failed.

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "REDIS_URL is not a valid Redis URL ({0}): set it like redis://HOST:6379 or rediss://HOST:6380"
    )]
    BadUrl(#[source] redis::RedisError),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("could not encode the event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("no dead letter {id} on {stream}")]
    NoSuchDeadLetter { stream: String, id: String },
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error(transparent)]
    Db(#[from] sb_db::DbError),
}
