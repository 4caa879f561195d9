//! The command line. Every command reads its configuration from the environment (and a `.env`
//! file in the working directory); `.env.example` lists every variable with its default.

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard: a self-hostable, multi-tenant AI platform",
    long_about = "Switchboard: a self-hostable, multi-tenant AI platform.\n\n\
        One binary runs any service (`serve`) and carries the operator's commands. \
        Configuration comes from the environment; see .env.example for every variable.",
    after_help = "Quick start (local Postgres and Redis, no Docker):\n  \
        switchboard serve all --demo    migrate, seed the demo tenant, print its credentials and serve everything"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run one service, or all five in this process
    #[command(
        after_help = "Ports: gateway 8080, api 8081, agent-worker 8082, ledger 8083, mock-llm 8090 \
        (GATEWAY_PORT, API_PORT, … override them; PORT overrides the port of a single service).\n\
        Stops cleanly on SIGINT or SIGTERM: in-flight requests finish first."
    )]
    Serve {
        #[arg(value_enum)]
        service: Service,
        /// Local demo: generate throwaway secrets if JWT_SECRET or ENCRYPTION_MASTER_KEY are
        /// unset, and with `all`, apply migrations and seed the demo tenant before serving
        #[arg(long)]
        demo: bool,
    },
    /// Apply the database migrations (idempotent), creating the database and roles if missing
    #[command(
        after_help = "Connects with DATABASE_OWNER_URL. Applied migrations are skipped; \
        a migration file changed after it was applied is refused."
    )]
    Migrate,
    /// Create the demo tenant, its users, an API key, a mock-llm provider and a budget
    #[command(
        after_help = "Safe to run twice: nothing is duplicated, and the credentials are \
        re-issued (printed again) because only their hashes are stored."
    )]
    Seed {
        /// Seed the demo data (the only kind there is; required so it is never done by accident)
        #[arg(long, required = true)]
        demo: bool,
        /// Print one JSON object (tenant_id, admin_email, admin_password, platform_admin_email,
        /// platform_admin_password, api_key, …) instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Gateway,
    Api,
    AgentWorker,
    Ledger,
    MockLlm,
    /// All five in one process
    All,
}
