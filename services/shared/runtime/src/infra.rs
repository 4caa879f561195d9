//! The handles a service needs to reach its infrastructure, created once per process and
//! shared (in `serve all`, by all five services).

use redis::aio::ConnectionManager;
use sb_bus::{Bus, BusError};
use sb_config::Config;
use sb_db::{AppPool, DbError, SystemPool};

#[derive(Clone)]
pub struct Infra {
    pub app_db: AppPool,
    pub system_db: SystemPool,
    /// The bus, whose shared connection is also the service's Redis connection.
    pub bus: Bus,
    /// `METRICS_PORT`: when set, `/metrics` and `/health/detailed` leave the services' own
    /// ports for the process's internal listener ([`crate::health::internal_router`]).
    pub metrics_port: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl Infra {
    /// Creates the pools and the Redis connection without connecting: services start while a
    /// dependency is down and report it in `/health/detailed`.
    pub fn connect_lazy(config: &Config) -> Result<Self, InfraError> {
        Ok(Self {
            app_db: AppPool::connect_lazy(&config.database)?,
            system_db: SystemPool::connect_lazy(&config.database)?,
            bus: Bus::new(&config.redis)?,
            metrics_port: config.listen.metrics_port,
        })
    }

    /// A shared connection for short Redis commands (never blocking ones).
    pub fn redis(&self) -> ConnectionManager {
        self.bus.redis()
    }
}
