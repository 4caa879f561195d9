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
    /// The price book: list prices, add one, import a CSV price list
    #[command(
        subcommand,
        after_help = "Prices are USD per million tokens, per provider and model, each from an \
        effective date; a call is charged the price in force when it is made. A price is never \
        changed or removed and a new one starts now or later, so calls already made keep their \
        price. Gateways and the ledger read the book every 5 minutes: date a change at least 5 \
        minutes ahead to have it charged from its first second. Each price added is audited (no \
        tenant; the actor is this machine's user). Examples:\n  \
        switchboard prices list\n  \
        switchboard prices set --provider openai --model gpt-4o --input 2.50 --cached-input 1.25 --output 10 --from 2027-01-01\n  \
        switchboard prices import prices.csv --dry-run"
    )]
    Prices(PricesCommand),
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
pub enum PricesCommand {
    /// List the prices in force and those scheduled (with --history, superseded ones too)
    List {
        /// Only this provider's prices (openai, anthropic, gemini)
        #[arg(long)]
        provider: Option<String>,
        /// Only this model's prices
        #[arg(long)]
        model: Option<String>,
        /// Show superseded prices too
        #[arg(long)]
        history: bool,
    },
    /// Add a price for a model from a date (now by default); calls before it keep their price
    Set(SetPrice),
    /// Add the prices of a CSV file in one transaction: every line checked, all or nothing,
    /// and nothing added when run again
    #[command(
        after_help = "The header names the columns, in any order: provider, model, \
        effective_from (YYYY-MM-DD for midnight UTC or RFC 3339; empty for now), and \
        input, output and optionally cached_input (the input price when absent), each as \
        <name>_usd_per_mtok (dollars, such as 2.50) or <name>_micros_per_mtok (whole \
        micro-dollars); optional currency (USD only). Lines starting with # are skipped. \
        A dated row the book already holds with the same prices, or an undated row whose \
        prices are those in force now, is left as it is; one with other prices, or a new one \
        dated in the past, is refused with its line number. Example:\n  \
        provider,model,effective_from,input_usd_per_mtok,cached_input_usd_per_mtok,output_usd_per_mtok\n  \
        openai,gpt-4o,2024-10-01,2.50,1.25,10.00"
    )]
    Import {
        /// The CSV file, or - for standard input
        file: String,
        /// Check everything and show what would be added, without writing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
pub struct SetPrice {
    /// openai, anthropic or gemini
    #[arg(long)]
    pub provider: String,
    /// The model as calls name it, such as gpt-4o
    #[arg(long)]
    pub model: String,
    /// USD per million input tokens, such as 2.50 (exact to the micro-dollar)
    #[arg(long, value_parser = sb_api::core::prices::csv::usd_arg)]
    pub input: sb_kernel::Micros,
    /// USD per million cached input tokens (default: the input price)
    #[arg(long, value_parser = sb_api::core::prices::csv::usd_arg)]
    pub cached_input: Option<sb_kernel::Micros>,
    /// USD per million output tokens
    #[arg(long, value_parser = sb_api::core::prices::csv::usd_arg)]
    pub output: sb_kernel::Micros,
    /// When the price starts: 2027-01-31 (midnight UTC) or 2027-01-31T09:00:00Z; now by
    /// default, never in the past
    #[arg(long, value_parser = sb_api::core::prices::csv::date_arg)]
    pub from: Option<sb_api::core::prices::EffectiveFrom>,
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

    /// The platform secrets the service reads, and so must be given (the deploy files give it
    /// no other; `scripts/validate-infra` checks them against the same table).
    pub fn secret_needs(self) -> sb_config::SecretNeeds {
        use sb_config::SecretNeeds;
        match self {
            Self::Api | Self::All => SecretNeeds::ALL,
            Self::Gateway => SecretNeeds {
                jwt: false,
                encryption: true,
            },
            Self::AgentWorker | Self::Ledger | Self::MockLlm => SecretNeeds::NONE,
        }
    }
}
