//! `switchboard serve`: run one service or all five, until SIGINT or SIGTERM.
//!
//! On the signal every service drains (see `sb_runtime::App::run`: readiness false, the drain
//! delay, in-flight requests, then background work such as the bus batch in hand). The process
//! exits 0 once all have stopped, or with an error naming the services still busy when
//! `SHUTDOWN_TIMEOUT_SECONDS` have passed since the signal.

use std::net::SocketAddr;

use anyhow::Context;
use sb_config::Config;
use sb_runtime::{App, Infra};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Service;

pub async fn run(service: Service, config: Config) -> anyhow::Result<()> {
    if !config.secrets.generated.is_empty() {
        tracing::warn!(
            generated = ?config.secrets.generated,
            "demo mode: generated throwaway secrets; sessions and encrypted credentials will not survive a restart (set them in .env to keep them)"
        );
    }
    if config.demo && service == Service::All {
        super::migrate::run(&config.database).await?;
        super::seed::run(&config, false).await?;
    }
    let apps = build(service, &config).await?;
    for app in &apps {
        println!(
            "{:<13} http://{}",
            app.name(),
            display_addr(app.local_addr())
        );
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let mut running = JoinSet::new();
    let mut busy = Vec::new();
    for app in apps {
        let name = app.name();
        busy.push(name);
        let app = app.with_drain(config.shutdown.drain);
        let token = shutdown.clone();
        running.spawn(async move { (name, app.run(token).await) });
    }
    let mut failure = None;
    // Serve until the signal, or until a service stops on its own (which stops the rest).
    tokio::select! {
        () = shutdown.cancelled() => {}
        Some(first) = running.join_next() => {
            failure = settle(first, &mut busy).err();
            shutdown.cancel();
        }
    }
    let deadline = config.shutdown.timeout;
    let drained = tokio::time::timeout(deadline, async {
        while let Some(result) = running.join_next().await {
            if let Err(e) = settle(result, &mut busy) {
                failure.get_or_insert(e);
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::error!(
            abandoned = ?busy,
            "shutdown timeout: these services were still finishing in-flight requests or background work (bus entries in hand stay pending and are redelivered to another consumer)"
        );
        anyhow::bail!(
            "{} did not stop within {} s of the shutdown signal (SHUTDOWN_TIMEOUT_SECONDS); their unfinished work was abandoned",
            busy.join(", "),
            deadline.as_secs()
        );
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("Switchboard stopped cleanly");
            Ok(())
        }
    }
}

/// The outcome of one service's run, which is no longer busy.
fn settle(
    joined: Result<(&'static str, std::io::Result<()>), tokio::task::JoinError>,
    busy: &mut Vec<&'static str>,
) -> anyhow::Result<()> {
    let (name, result) = joined.context("a service panicked")?;
    busy.retain(|b| *b != name);
    result.with_context(|| format!("{name} stopped with an error"))
}

/// Binds every service asked for, so a port conflict is reported before anything runs.
async fn build(service: Service, config: &Config) -> anyhow::Result<Vec<App>> {
    let listen = &config.listen;
    // PORT (Fly, Railway) applies to a single service only.
    let port = |default: u16| {
        if service == Service::All {
            default
        } else {
            listen.port.unwrap_or(default)
        }
    };
    let addr = |default: u16| SocketAddr::new(listen.host, port(default));
    let wants = |s: Service| service == s || service == Service::All;
    let needs_infra = service != Service::MockLlm;
    let infra = if needs_infra {
        Some(Infra::connect_lazy(config)?)
    } else {
        None
    };
    let mut apps = Vec::new();
    if let Some(infra) = &infra {
        if wants(Service::Gateway) {
            apps.push(sb_gateway::build(infra, config, addr(listen.gateway_port)).await?);
        }
        if wants(Service::Api) {
            apps.push(sb_api::build(infra, config, addr(listen.api_port)).await?);
        }
        if wants(Service::AgentWorker) {
            apps.push(sb_agent_worker::build(infra, config, addr(listen.agent_worker_port)).await?);
        }
        if wants(Service::Ledger) {
            apps.push(sb_ledger::build(infra, config, addr(listen.ledger_port)).await?);
        }
    }
    if wants(Service::MockLlm) {
        apps.push(sb_mock_llm::build(addr(listen.mock_llm_port)).await?);
    }
    // One internal listener per process for `/metrics` and `/health/detailed`: the process has
    // one metrics registry, whichever services it serves.
    if let (Some(infra), Some(port)) = (&infra, listen.metrics_port) {
        let name = service.telemetry_name().unwrap_or("switchboard");
        let router = sb_runtime::health::internal_router(name, infra);
        let addr = SocketAddr::new(listen.host, port);
        apps.push(App::bind("metrics", addr, router).await?);
    }
    Ok(apps)
}

/// `0.0.0.0:8080` is where it listens; `127.0.0.1:8080` is what a person can open.
fn display_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop the process");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}
