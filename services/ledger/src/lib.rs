//! The ledger service: turns usage events into an exact, tenant-isolated spend record.
//!
//! It consumes `sb:usage` (group `ledger`), records each batch in one transaction (ledger rows,
//! rollups, threshold alerts through the outbox), mirrors budget spend to Redis, reconciles
//! that mirror with Postgres, and keeps the monthly partitions of `usage_ledger`.

pub mod core;
mod handler;
mod metrics;
mod routes;
mod tasks;

use std::net::SocketAddr;

use sb_bus::{ConsumerOptions, OutboxRelay};
use sb_config::Config;
use sb_contracts::streams;
use sb_runtime::{App, Infra};

pub use handler::UsageHandler;

pub const SERVICE: &str = "ledger";
/// The ledger's consumer group on `sb:usage`.
pub const GROUP: &str = "ledger";

/// Binds the ledger on `addr` (port 0 picks a free port); `App::run` serves it and runs its
/// consumer, reconciler, partition maintenance and outbox relay until shutdown.
pub async fn build(infra: &Infra, config: &Config, addr: SocketAddr) -> std::io::Result<App> {
    let mut app = App::bind(
        SERVICE,
        addr,
        sb_runtime::standard_layers(routes::router(infra), SERVICE),
    )
    .await?;
    let mut options = ConsumerOptions::new(streams::USAGE, GROUP);
    options.batch_size = config.ledger.batch_size;
    options.visibility_timeout = config.bus.visibility_timeout;
    options.max_deliveries = config.bus.max_deliveries;
    let config = &config.ledger;
    // Several consumers of the group in one process, so that one reads and decodes while
    // another waits for Postgres (docs/benchmarks.md).
    for n in 0..config.consumers {
        let mut options = options.clone();
        options.consumer = format!("{}-{n}", options.consumer);
        let consumer = infra.bus.consumer(options).map_err(std::io::Error::other)?;
        let handler = UsageHandler::new(
            infra.system_db.clone(),
            infra.redis(),
            infra.bus.key_prefix().to_owned(),
        );
        app = app.with_task(Box::new(move |shutdown| {
            Box::pin(consumer.run(handler, shutdown))
        }));
    }
    let relay = OutboxRelay::new(infra.system_db.clone(), infra.bus.clone());
    let (reconciler, maintenance) = (
        tasks::reconciler(infra, config),
        tasks::partition_maintenance(infra, config),
    );
    Ok(app
        .with_task(Box::new(move |shutdown| Box::pin(reconciler(shutdown))))
        .with_task(Box::new(move |shutdown| Box::pin(maintenance(shutdown))))
        .with_task(Box::new(move |shutdown| Box::pin(relay.run(shutdown)))))
}
