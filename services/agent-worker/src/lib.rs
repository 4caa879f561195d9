//! The agent-worker service: runs agents, pausing for human approval.
//!
//! It consumes `sb:agent-jobs` (group `agent-worker`) and takes each run under a lease; a
//! run's every step is checkpointed in Postgres before the next (`core::advance`), its model
//! calls go through the gateway, its tools run in a sandbox (`sandbox`, `tools`). A sweeper
//! takes runs nobody holds and ends runs whose approval expired. docs/architecture.md
//! ("Agents") states the invariants.

pub mod core;
mod routes;
pub mod sandbox;
pub mod tools;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sb_bus::{ConsumerOptions, OutboxRelay};
use sb_config::Config;
use sb_contracts::streams;
use sb_runtime::{App, Infra};

use crate::core::jobs::{GROUP, JobHandler};
use crate::core::tooling::Tools;
use crate::core::worker::Worker;
use crate::sandbox::{Sandbox, Trampoline};

pub const SERVICE: &str = "agent-worker";

/// The sandbox's trampoline: `agent-sandbox-exec` beside this executable (tests, a build of
/// this crate), or the `switchboard` binary's hidden `sandbox-exec` command.
pub fn trampoline() -> Option<Trampoline> {
    Trampoline::locate().or_else(|| {
        let exe = std::env::current_exe().ok()?;
        (exe.file_stem()? == "switchboard").then(|| Trampoline {
            program: exe,
            args: vec!["sandbox-exec".into()],
        })
    })
}

/// Binds the agent-worker on `addr` (port 0 picks a free port); `App::run` serves it and runs
/// its job consumer, its watch over the held runs, the sweeper and an outbox relay.
pub async fn build(infra: &Infra, config: &Config, addr: SocketAddr) -> std::io::Result<App> {
    let sandbox = tokio::task::spawn_blocking(|| Sandbox::detect(trampoline()))
        .await
        .map_err(std::io::Error::other)?;
    tracing::info!(mode = sandbox.mode().as_str(), "agent tools sandbox");
    let mode = sandbox.mode();
    let tools = Tools::new(&config.agent, sandbox).map_err(std::io::Error::other)?;
    let worker = Arc::new(Worker::new(
        infra.app_db.clone(),
        infra.system_db.clone(),
        infra.redis(),
        infra.bus.key_prefix().to_owned(),
        config.agent.clone(),
        tools,
    ));
    let mut options = ConsumerOptions::new(streams::AGENT_JOBS, GROUP);
    options.visibility_timeout = config.bus.visibility_timeout;
    options.max_deliveries = config.bus.max_deliveries;
    let consumer = infra.bus.consumer(options).map_err(std::io::Error::other)?;
    let handler = JobHandler::new(Arc::clone(&worker));
    let relay = OutboxRelay::new(infra.system_db.clone(), infra.bus.clone());
    let (watcher, sweeper) = (Arc::clone(&worker), Arc::clone(&worker));
    let sweep_every = (config.agent.lease / 2).max(Duration::from_secs(1));
    let app = App::bind(
        SERVICE,
        addr,
        sb_runtime::standard_layers(routes::router(infra, worker), SERVICE),
    )
    .await?;
    // After the standard layers, which install the metrics recorder.
    core::metrics::sandbox_mode(mode);
    Ok(app
        .with_task(Box::new(move |shutdown| {
            Box::pin(consumer.run(handler, shutdown))
        }))
        .with_task(Box::new(move |shutdown| Box::pin(watcher.watch(shutdown))))
        .with_task(Box::new(move |shutdown| {
            Box::pin(sweeper.sweep(sweep_every, shutdown))
        }))
        .with_task(Box::new(move |shutdown| Box::pin(relay.run(shutdown)))))
}
