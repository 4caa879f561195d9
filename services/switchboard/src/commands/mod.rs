//! One module per command; `run` dispatches.

mod admin;
mod audit;
mod dlq;
mod doctor;
mod keys;
mod migrate;
mod prices;
mod seed;
mod serve;

use sb_config::{Config, DatabaseConfig, Source};

use crate::cli::{Cli, Command, KeysCommand};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { service, demo } => {
            let config = Config::for_process(&Source::env(), demo, service.secret_needs())?;
            let _telemetry =
                sb_telemetry::init_service(&config.telemetry, service.telemetry_name())?;
            serve::run(service, config).await
        }
        Command::Migrate => {
            let database = DatabaseConfig::from_source(&Source::env())?;
            let _telemetry = init_command_logs()?;
            migrate::run(&database).await.map(|_| ())
        }
        Command::Dlq(command) => {
            let _telemetry = init_command_logs()?;
            dlq::run(command).await
        }
        Command::Doctor => {
            let _telemetry = init_command_logs()?;
            if doctor::run().await? {
                Ok(())
            } else {
                anyhow::bail!("some checks failed (see FAIL above)")
            }
        }
        Command::Admin(command) => {
            let database = DatabaseConfig::from_source(&Source::env())?;
            let _telemetry = init_command_logs()?;
            admin::run(command, &database).await
        }
        Command::Prices(command) => {
            let database = DatabaseConfig::from_source(&Source::env())?;
            let _telemetry = init_command_logs()?;
            prices::run(command, &database).await
        }
        Command::Keys(KeysCommand::Rotate) => {
            let config = Config::from_env(false)?;
            let _telemetry = init_command_logs()?;
            keys::run(&config).await
        }
        Command::Seed { demo: _, json } => {
            // Seeding needs no secrets; demo mode keeps it from asking for them.
            let config = Config::from_env(true)?;
            let _telemetry = init_command_logs()?;
            seed::run(&config, json).await
        }
    }
}

/// Operator commands log warnings and errors only, so their own output stays readable.
fn init_command_logs() -> anyhow::Result<sb_telemetry::TelemetryGuard> {
    let source = Source::env();
    let mut log = sb_config::LogConfig::from_source(&source)?;
    if !source.is_set("LOG_LEVEL") {
        log.level = "warn".to_owned();
    }
    Ok(sb_telemetry::init(&log)?)
}
