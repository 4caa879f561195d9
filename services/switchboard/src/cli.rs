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
    /// Check the configuration, the database and Redis against the security checklist
    #[command(
        after_help = "Checks: secret length and entropy, TLS to remote Postgres and Redis, CORS, \
        row-level security enabled and forced on every tenant table, the application role (not \
        superuser, owner or BYPASSRLS), a platform admin, migrations current, Redis persistence. \
        Prints PASS/FAIL with a fix for each; exits 1 if any fails. Reads the same environment \
        as `serve` (DATABASE_OWNER_URL for the migrations check). Also probes the agent \
        tools' sandbox: bubblewrap, else Landlock + seccomp, else none."
    )]
    Doctor,
    /// Manage the encryption keys of provider credentials
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Make, list and revoke platform admins (the operators who manage every tenant)
    #[command(
        subcommand,
        after_help = "Each change is audited (no tenant; the actor is this machine's user). \
        Examples:\n  switchboard admin create --email ops@example.com\n  \
        printf '%s' \"$PASSWORD\" | switchboard admin create --email ops@example.com --password-stdin"
    )]
    Admin(AdminCommand),
    /// Inspect and repair the dead-letter queues: list, show, replay, purge
    #[command(
        subcommand,
        after_help = "Streams: usage, agent-jobs, agent-events, budget-alerts, webhook-deliveries \
        (keys under REDIS_KEY_PREFIX, dead letters in <stream>:dlq). Replay and purge write an \
        audit entry, so they need DATABASE_URL too. See docs/architecture.md, \"Event bus\"."
    )]
    Dlq(DlqCommand),
    /// Create the demo tenant, its users, an API key, a mock-llm provider, a budget and an agent
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

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Make a platform admin: promote an existing account, or create one (with a generated
    /// password printed once, unless --password-stdin)
    Create {
        /// The account's e-mail address
        #[arg(long)]
        email: String,
        /// Read the password from standard input (12 to 256 characters) instead of generating
        /// one; for an existing account it replaces the password
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the platform admins
    List,
    /// Take platform admin away from an account (never the last one)
    Revoke {
        /// The account's e-mail address
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every provider credential under ENCRYPTION_MASTER_KEY, while serving
    #[command(
        after_help = "Set the new key as ENCRYPTION_MASTER_KEY and the old one in \
        ENCRYPTION_PREVIOUS_KEYS on every service first (gateways then open both), run this, and \
        drop the old key once it reports no ciphertext left under it. Safe to run again. See \
        docs/runbooks/key-rotation.md."
    )]
    Rotate,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first (every stream unless one is named)
    List {
        #[arg(value_parser = stream_name)]
        stream: Option<String>,
        /// At most this many per stream
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one dead letter in full: why it failed, and the original entry
    Show {
        #[arg(value_parser = stream_name)]
        stream: String,
        /// The dead letter's id (from `dlq list`)
        id: String,
    },
    /// Put dead letters back on their stream (same event id: idempotent consumers skip work
    /// already done) and remove them from the DLQ
    Replay {
        #[arg(index = 1, value_parser = stream_name)]
        stream: String,
        #[command(flatten)]
        which: Which,
    },
    /// Delete dead letters for good
    Purge {
        #[arg(index = 1, value_parser = stream_name)]
        stream: String,
        #[command(flatten)]
        which: Which,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// One dead letter, by its id
    #[arg(index = 2)]
    pub id: Option<String>,
    /// Every dead letter of the stream
    #[arg(long)]
    pub all: bool,
}

/// A stream of DESIGN.md, without the key prefix.
fn stream_name(name: &str) -> Result<String, String> {
    if sb_contracts::streams::ALL.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "unknown stream; expected one of {}",
            sb_contracts::streams::ALL.join(", ")
        ))
    }
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

impl Service {
    /// The end of `service.name` on exported spans; `None` for `serve all`.
    pub fn telemetry_name(self) -> Option<&'static str> {
        match self {
            Self::Gateway => Some("gateway"),
            Self::Api => Some("api"),
            Self::AgentWorker => Some("agent-worker"),
            Self::Ledger => Some("ledger"),
            Self::MockLlm => Some("mock-llm"),
            Self::All => None,
        }
    }
}
