//! Typed configuration from the environment, validated at start-up.
//!
//! Every variable is declared once, with its default and meaning, in [`vars::VARIABLES`];
//! `.env.example` and the README are checked against that table by a test. Loading never
//! panics: a bad value becomes a [`ConfigError`] whose one-line message names the variable and
//! says how to fix it, and `main` turns it into a non-zero exit.

mod cidr;
mod error;
mod secrets;
mod source;
mod tracing;
pub mod vars;

use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;

pub use cidr::Cidr;
pub use error::ConfigError;
pub use secrets::{MIN_SECRET_LEN, SecretNeeds, Secrets};
pub use source::Source;
pub use tracing::{RootSampler, TraceSampler};

/// Which Postgres roles a service connects as (see `migrations/` and docs/architecture.md).
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// The application role (`switchboard_app`): tenant data, always through `TenantTx`.
    pub app_url: SecretString,
    /// The system role (`switchboard_system`): the few audited cross-tenant paths.
    pub system_url: SecretString,
    /// The owner role: migrations only. Never used by a running service.
    pub owner_url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `DATABASE_URL` goes through PgBouncer in transaction mode (docs/architecture.md,
    /// "Tenancy"): the application pool caches no prepared statements.
    pub pgbouncer: bool,
}

impl DatabaseConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            app_url: src.postgres_url("DATABASE_URL")?,
            system_url: src.postgres_url("DATABASE_SYSTEM_URL")?,
            owner_url: src.postgres_url("DATABASE_OWNER_URL")?,
            max_connections: src.number("DATABASE_MAX_CONNECTIONS", 1..=1000)?,
            acquire_timeout: Duration::from_secs(
                src.number("DATABASE_ACQUIRE_TIMEOUT_SECONDS", 1..=300)?,
            ),
            pgbouncer: src.parse("DATABASE_PGBOUNCER", "`true` or `false`")?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: SecretString,
    /// Put in front of every key and stream name, so tests (and tenants of one Redis) can share.
    pub key_prefix: String,
}

impl RedisConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            url: src.redis_url("REDIS_URL")?,
            key_prefix: src.string("REDIS_KEY_PREFIX")?,
        })
    }
}

/// How the bus's consumers retry (docs/architecture.md, "Event bus").
#[derive(Clone, Debug)]
pub struct BusConfig {
    pub visibility_timeout: Duration,
    pub max_deliveries: u64,
}

impl BusConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            visibility_timeout: Duration::from_secs(
                src.number("BUS_VISIBILITY_TIMEOUT_SECONDS", 1..=86_400)?,
            ),
            max_deliveries: src.number("BUS_MAX_DELIVERIES", 1..=1000)?,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// A `tracing` filter: a level (`info`) or directives (`info,sb_gateway=debug`).
    pub level: String,
    pub format: LogFormat,
}

impl LogConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let format = match src.string("LOG_FORMAT")?.as_str() {
            "pretty" | "text" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("{other:?} is not a log format"),
                    "set it to `json` or `pretty`",
                ));
            }
        };
        Ok(Self {
            level: src.string("LOG_LEVEL")?,
            format,
        })
    }
}

/// Where each service listens.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    pub host: IpAddr,
    /// `PORT`, as platforms such as Fly and Railway set it: overrides the port of the one
    /// service a process serves. Ignored by `serve all`, which needs five ports.
    pub port: Option<u16>,
    pub gateway_port: u16,
    pub api_port: u16,
    pub agent_worker_port: u16,
    pub ledger_port: u16,
    pub mock_llm_port: u16,
    /// `METRICS_PORT`: where `/metrics` and `/health/detailed` are served, apart from the
    /// services' own ports (one listener per process). None: on each service's port.
    pub metrics_port: Option<u16>,
}

impl ListenConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            host: src.parse("HOST", "an IP address such as 0.0.0.0 or 127.0.0.1")?,
            port: src.optional_number("PORT", 0..=65535)?,
            gateway_port: src.number("GATEWAY_PORT", 0..=65535)?,
            api_port: src.number("API_PORT", 0..=65535)?,
            agent_worker_port: src.number("AGENT_WORKER_PORT", 0..=65535)?,
            ledger_port: src.number("LEDGER_PORT", 0..=65535)?,
            mock_llm_port: src.number("MOCK_LLM_PORT", 0..=65535)?,
            metrics_port: src.optional_number("METRICS_PORT", 0..=65535)?,
        })
    }

    /// Every port the same (0 in tests: each service picks a free one).
    pub fn all_on(host: IpAddr, port: u16) -> Self {
        Self {
            host,
            port: None,
            gateway_port: port,
            api_port: port,
            agent_worker_port: port,
            ledger_port: port,
            mock_llm_port: port,
            metrics_port: None,
        }
    }
}

/// How a service stops on SIGTERM (see `App::run`).
#[derive(Clone, Debug)]
pub struct ShutdownConfig {
    /// How long a service keeps serving after the signal, `/health/ready` answering 503, so
    /// load balancers take it out of rotation before its listener closes.
    pub drain: Duration,
    /// How long in-flight requests and bus batches may take, from the signal, before the
    /// process exits anyway.
    pub timeout: Duration,
}

impl ShutdownConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let seconds = |name, range| src.number(name, range).map(Duration::from_secs);
        let drain = seconds("SHUTDOWN_DRAIN_SECONDS", 0..=600)?;
        let timeout = seconds("SHUTDOWN_TIMEOUT_SECONDS", 1..=3600)?;
        if drain >= timeout {
            return Err(ConfigError::new(
                "SHUTDOWN_DRAIN_SECONDS",
                format!(
                    "is {}, not less than SHUTDOWN_TIMEOUT_SECONDS ({})",
                    drain.as_secs(),
                    timeout.as_secs()
                ),
                "make the drain delay shorter than the shutdown timeout",
            ));
        }
        Ok(Self { drain, timeout })
    }
}

/// Settings the agent-worker will use; validated now so a typo fails at start-up.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub max_iterations: u32,
    pub timeout: Duration,
    pub workspace_root: String,
    pub max_workspace_size_gb: u32,
    pub workspace_retention_days: u32,
    pub allowed_bash_commands: Vec<String>,
    pub approval_ttl: Duration,
    pub gateway_url: String,
    pub concurrency: usize,
    pub lease: Duration,
    pub tool_timeout: Duration,
    /// Model calls per minute per team and tenant; 0: no limit.
    pub team_rpm: u32,
}

impl AgentConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            max_iterations: src.number("MAX_AGENT_ITERATIONS", 1..=10_000)?,
            timeout: Duration::from_secs(src.number("AGENT_TIMEOUT_SECONDS", 1..=86_400)?),
            workspace_root: src.string("WORKSPACE_ROOT")?,
            max_workspace_size_gb: src.number("MAX_WORKSPACE_SIZE_GB", 1..=10_000)?,
            workspace_retention_days: src.number("WORKSPACE_RETENTION_DAYS", 1..=3650)?,
            allowed_bash_commands: src.list("ALLOWED_BASH_COMMANDS")?,
            approval_ttl: Duration::from_secs(src.number("APPROVAL_TTL_SECONDS", 1..=31_536_000)?),
            gateway_url: src.string("AGENT_GATEWAY_URL")?,
            concurrency: src.number("AGENT_CONCURRENCY", 1..=10_000)?,
            lease: Duration::from_secs(src.number("AGENT_LEASE_SECONDS", 2..=3600)?),
            tool_timeout: Duration::from_secs(
                src.number("AGENT_TOOL_TIMEOUT_SECONDS", 1..=86_400)?,
            ),
            team_rpm: src.number("AGENT_TEAM_RPM", 0..=1_000_000)?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<SecretString>,
    pub from: String,
}

impl SmtpConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            host: src.string("SMTP_HOST")?,
            port: src.number("SMTP_PORT", 1..=65535)?,
            user: src.optional_string("SMTP_USER"),
            pass: src.optional_string("SMTP_PASS").map(SecretString::from),
            from: src.string("EMAIL_FROM")?,
        })
    }
}

/// The ledger's batching, retention and reconciliation.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    pub batch_size: usize,
    /// Consumers of `sb:usage` per process: while one waits for Postgres, another reads.
    pub consumers: usize,
    pub retention_months: u32,
    pub reconcile_interval: Duration,
    /// Top tenants by spend that get a `budget_spend_micros{tenant}` series (bounded cardinality).
    pub tenant_metrics: usize,
}

impl LedgerConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            batch_size: src.number("LEDGER_BATCH_SIZE", 1..=100_000)?,
            consumers: src.number("LEDGER_CONSUMERS", 1..=64)?,
            retention_months: src.number("LEDGER_RETENTION_MONTHS", 1..=1200)?,
            reconcile_interval: Duration::from_secs(
                src.number("LEDGER_RECONCILE_SECONDS", 1..=86_400)?,
            ),
            tenant_metrics: src.number("LEDGER_TENANT_METRICS", 0..=1000)?,
        })
    }
}

/// The gateway's limits, caches, upstream policy and usage buffer.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub max_body_bytes: usize,
    pub key_cache_ttl: Duration,
    pub upstream_timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub reservation_ttl: Duration,
    pub settled_hold: Duration,
    pub buffer_dir: std::path::PathBuf,
    pub buffer_max_events: usize,
    /// Provider entries may reach loopback, private and link-local addresses
    /// (`PROVIDER_ALLOW_PRIVATE`: the demo's mock-llm, a model server on the host).
    pub provider_allow_private: bool,
}

impl GatewayConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let seconds = |name, range| src.number(name, range).map(Duration::from_secs);
        Ok(Self {
            max_body_bytes: src.number("GATEWAY_MAX_BODY_BYTES", 1024..=1_073_741_824)?,
            key_cache_ttl: seconds("GATEWAY_KEY_CACHE_SECONDS", 0..=3600)?,
            upstream_timeout: seconds("GATEWAY_UPSTREAM_TIMEOUT_SECONDS", 1..=3600)?,
            retries: src.number("GATEWAY_RETRIES", 0..=10)?,
            retry_backoff: Duration::from_millis(
                src.number("GATEWAY_RETRY_BACKOFF_MS", 0..=60_000)?,
            ),
            breaker_failures: src.number("GATEWAY_BREAKER_FAILURES", 1..=1000)?,
            breaker_cooldown: seconds("GATEWAY_BREAKER_COOLDOWN_SECONDS", 1..=3600)?,
            reservation_ttl: seconds("GATEWAY_RESERVATION_TTL_SECONDS", 10..=86_400)?,
            settled_hold: seconds("GATEWAY_SETTLED_HOLD_SECONDS", 0..=3600)?,
            buffer_dir: src.string("GATEWAY_BUFFER_DIR")?.into(),
            buffer_max_events: src.number("GATEWAY_BUFFER_MAX_EVENTS", 1..=100_000_000)?,
            provider_allow_private: src.parse("PROVIDER_ALLOW_PRIVATE", "`true` or `false`")?,
        })
    }
}

/// The api's public address, request limits, session lengths and GraphQL switches.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Where people reach the api and dashboard; links in e-mail start with it.
    pub public_url: String,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub graphql_introspection: bool,
    pub graphql_max_depth: usize,
    pub graphql_max_complexity: usize,
    /// Run the realtime fan-out consumers here (`API_REALTIME_FANOUT`).
    pub realtime_fanout: bool,
    /// Password hashes (Argon2id, 19 MiB each) computed at once; more are answered 503.
    pub password_hash_concurrency: usize,
}

impl ApiConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            public_url: src.http_url("PUBLIC_URL")?,
            max_body_bytes: src.number("API_MAX_BODY_BYTES", 1024..=104_857_600)?,
            request_timeout: Duration::from_secs(
                src.number("API_REQUEST_TIMEOUT_SECONDS", 1..=3600)?,
            ),
            access_token_ttl: Duration::from_secs(src.number("ACCESS_TOKEN_SECONDS", 60..=86_400)?),
            refresh_token_ttl: Duration::from_secs(
                src.number::<u64>("REFRESH_TOKEN_DAYS", 1..=365)? * 86_400,
            ),
            graphql_introspection: src.parse("GRAPHQL_INTROSPECTION", "`true` or `false`")?,
            graphql_max_depth: src.number("GRAPHQL_MAX_DEPTH", 2..=64)?,
            graphql_max_complexity: src.number("GRAPHQL_MAX_COMPLEXITY", 10..=100_000)?,
            realtime_fanout: src.parse("API_REALTIME_FANOUT", "`true` or `false`")?,
            password_hash_concurrency: src.number("PASSWORD_HASH_CONCURRENCY", 1..=256)?,
        })
    }
}

/// Webhook deliveries (docs/architecture.md, "Webhooks").
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Allow webhook URLs that resolve to loopback, private, link-local or metadata addresses
    /// (local development only).
    pub allow_private: bool,
    /// Attempts of one delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// The delay before the first retry; each later one waits four times longer.
    pub retry_base: Duration,
    /// How long one attempt may take (connect, send, answer).
    pub timeout: Duration,
    /// How long a finished delivery (succeeded or failed) stays in the delivery log.
    pub delivery_retention: Duration,
}

impl WebhookConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_private: src.parse("WEBHOOK_ALLOW_PRIVATE", "`true` or `false`")?,
            max_attempts: src.number("WEBHOOK_MAX_ATTEMPTS", 1..=20)?,
            retry_base: Duration::from_millis(src.number("WEBHOOK_RETRY_BASE_MS", 1..=3_600_000)?),
            timeout: Duration::from_secs(src.number("WEBHOOK_TIMEOUT_SECONDS", 1..=300)?),
            delivery_retention: Duration::from_secs(
                86_400 * src.number::<u64>("WEBHOOK_DELIVERY_RETENTION_DAYS", 1..=3650)?,
            ),
        })
    }
}

/// Budgets created for new tenants.
#[derive(Clone, Debug)]
pub struct BudgetDefaults {
    /// Whole dollars; money becomes micro-dollars as soon as it enters the domain.
    pub default_budget_usd: i64,
    pub periods: Vec<String>,
}

impl BudgetDefaults {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let periods = src.list("BUDGET_PERIODS")?;
        if let Some(bad) = periods
            .iter()
            .find(|p| !matches!(p.as_str(), "daily" | "monthly" | "total"))
        {
            return Err(ConfigError::new(
                "BUDGET_PERIODS",
                format!("{bad:?} is not a budget period"),
                "use a comma-separated list of daily, monthly and total",
            ));
        }
        Ok(Self {
            default_budget_usd: src.number("DEFAULT_BUDGET_USD", 0..=1_000_000_000)?,
            periods,
        })
    }
}

/// Observability endpoints; all optional.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub log: LogConfig,
    /// The OTLP/HTTP base URL (`/v1/traces` is appended); `None`: no spans leave the process.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    pub sampler: TraceSampler,
    /// `deployment.environment` on spans, Sentry's environment.
    pub environment: String,
    pub sentry_dsn: Option<SecretString>,
}

impl TelemetryConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            log: LogConfig::from_source(src)?,
            otlp_endpoint: {
                tracing::check_otlp_protocol(src)?;
                src.optional_http_url("OTEL_EXPORTER_OTLP_ENDPOINT")?
            },
            service_name: src.string("OTEL_SERVICE_NAME")?,
            sampler: TraceSampler::from_source(src)?,
            environment: src.string("DEPLOYMENT_ENVIRONMENT")?,
            sentry_dsn: src.optional_string("SENTRY_DSN").map(SecretString::from),
        })
    }
}

/// Everything a running service needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub bus: BusConfig,
    pub secrets: Secrets,
    pub telemetry: TelemetryConfig,
    pub listen: ListenConfig,
    pub shutdown: ShutdownConfig,
    pub cors_origins: Vec<String>,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client (empty: none).
    pub trusted_proxies: Vec<Cidr>,
    pub smtp: SmtpConfig,
    pub agent: AgentConfig,
    pub budgets: BudgetDefaults,
    pub ledger: LedgerConfig,
    pub gateway: GatewayConfig,
    pub api: ApiConfig,
    pub webhooks: WebhookConfig,
    /// The base URL the demo seed gives its provider entry (mock-llm's OpenAI-style `/v1`).
    pub mock_llm_url: String,
    /// Started with `--demo`: throwaway secrets are allowed.
    pub demo: bool,
}

impl Config {
    /// Loads and validates everything. With `demo`, missing or short secrets are replaced by
    /// throwaway ones (and `secrets.generated` says so); without it they are refused.
    pub fn from_source(src: &Source, demo: bool) -> Result<Self, ConfigError> {
        Self::for_process(src, demo, SecretNeeds::ALL)
    }

    /// [`Config::from_source`] for a process that reads only the secrets in `needs` (`serve`
    /// of one service); the others need not be set.
    pub fn for_process(src: &Source, demo: bool, needs: SecretNeeds) -> Result<Self, ConfigError> {
        let cors_origins = src.list("CORS_ORIGINS")?;
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| *o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError::new(
                "CORS_ORIGINS",
                format!("{bad:?} is not an origin"),
                "list origins such as https://app.example.com, separated by commas",
            ));
        }
        let trusted_proxies = src
            .optional_string("TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|range| !range.is_empty())
            .map(|range| range.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ConfigError::new(
                    "TRUSTED_PROXIES",
                    e,
                    "list the load balancers' addresses or ranges, such as 10.0.0.0/8, separated by commas",
                )
            })?;
        let mut gateway = GatewayConfig::from_source(src)?;
        // The demo's tenant calls mock-llm on this machine or network.
        gateway.provider_allow_private |= demo;
        let mut api = ApiConfig::from_source(src)?;
        // The demo is for exploring, GraphQL's schema included.
        api.graphql_introspection |= demo;
        Ok(Self {
            database: DatabaseConfig::from_source(src)?,
            redis: RedisConfig::from_source(src)?,
            bus: BusConfig::from_source(src)?,
            secrets: Secrets::needed(src, demo, needs)?,
            telemetry: TelemetryConfig::from_source(src)?,
            listen: ListenConfig::from_source(src)?,
            shutdown: ShutdownConfig::from_source(src)?,
            cors_origins,
            trusted_proxies,
            smtp: SmtpConfig::from_source(src)?,
            agent: AgentConfig::from_source(src)?,
            budgets: BudgetDefaults::from_source(src)?,
            ledger: LedgerConfig::from_source(src)?,
            gateway,
            api,
            webhooks: WebhookConfig::from_source(src)?,
            mock_llm_url: src.http_url("MOCK_LLM_URL")?,
            demo,
        })
    }

    /// From the process environment.
    pub fn from_env(demo: bool) -> Result<Self, ConfigError> {
        Self::from_source(&Source::env(), demo)
    }
}

#[cfg(test)]
mod tests;
