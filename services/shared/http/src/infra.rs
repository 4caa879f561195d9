//! The handles a service needs to reach its infrastructure, created once per process and
//! shared (in `serve all`, by all five services).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sb_config::{Config, RedisConfig};
use sb_db::{AppPool, DbError, SystemPool};
use secrecy::ExposeSecret;

#[derive(Clone)]
pub struct Infra {
    pub app_db: AppPool,
    pub system_db: SystemPool,
    pub redis: ConnectionManager,
    pub redis_key_prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "REDIS_URL is not a valid Redis URL ({0}): set it like redis://HOST:6379 or rediss://HOST:6380"
    )]
    BadRedisUrl(#[source] redis::RedisError),
}

impl Infra {
    /// Creates the pools and the Redis connection without connecting: services start while a
    /// dependency is down and report it in `/health/detailed`.
    pub fn connect_lazy(config: &Config) -> Result<Self, InfraError> {
        Ok(Self {
            app_db: AppPool::connect_lazy(&config.database)?,
            system_db: SystemPool::connect_lazy(&config.database)?,
            redis: connect_redis_lazy(&config.redis)?,
            redis_key_prefix: config.redis.key_prefix.clone(),
        })
    }
}

/// A Redis connection that connects on first use and reconnects by itself. Timeouts are short
/// so that a dead Redis makes requests fail fast instead of hang.
pub fn connect_redis_lazy(config: &RedisConfig) -> Result<ConnectionManager, InfraError> {
    let client =
        redis::Client::open(config.url.expose_secret()).map_err(InfraError::BadRedisUrl)?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, manager_config).map_err(InfraError::BadRedisUrl)
}
