//! `switchboard`: one binary for every service and every operator command.

mod cli;
mod commands;
mod demo;
mod doctor;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc's malloc and free were 17 % of the gateway's CPU under load, with its
/// consolidation passes visible in the profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The agent tools' sandbox trampoline (hidden): it confines itself and execs the command,
    // so it runs before anything else is set up.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "sandbox-exec")
    {
        return sb_agent_worker::sandbox::trampoline::run(std::env::args_os().skip(2));
    }
    let cli = cli::Cli::parse();
    // A local `.env` is read if present; variables already set in the environment win.
    let _ = dotenvy::dotenv();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
