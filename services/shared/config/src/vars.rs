//! Every configuration variable, its default and what it means: the single list that
//! `.env.example` and the README mirror (a test keeps them in step).

/// One configuration variable.
pub struct Variable {
    pub name: &'static str,
    /// `None`: no default (must be set, or is optional and off).
    pub default: Option<&'static str>,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: Option<&'static str>, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

#[rustfmt::skip]
pub const VARIABLES: &[Variable] = &[
    // Postgres: three roles, see docs/architecture.md "Tenancy".
    var("DATABASE_URL", Some("postgres://switchboard_app@127.0.0.1:5432/switchboard"), "the application role's connection (no BYPASSRLS, owns nothing)"),
    var("DATABASE_SYSTEM_URL", Some("postgres://switchboard_system@127.0.0.1:5432/switchboard"), "the system role's connection, for the few audited cross-tenant paths"),
    var("DATABASE_OWNER_URL", Some("postgres://postgres@127.0.0.1:5432/switchboard"), "the owner's connection, used only by `switchboard migrate` (it may create the database and roles)"),
    var("DATABASE_MAX_CONNECTIONS", Some("10"), "pool size per role per process"),
    var("DATABASE_ACQUIRE_TIMEOUT_SECONDS", Some("5"), "how long a request waits for a pooled connection before failing"),
    var("DATABASE_PGBOUNCER", Some("false"), "`true` when DATABASE_URL goes through PgBouncer in transaction mode: no cached prepared statements (DATABASE_SYSTEM_URL must stay direct)"),
    // Redis.
    var("REDIS_URL", Some("redis://127.0.0.1:6379"), "Redis for the bus, rate limits and budget counters (rediss:// for TLS)"),
    var("REDIS_KEY_PREFIX", Some("sb:"), "prefix of every Redis key and stream"),
    var("BUS_VISIBILITY_TIMEOUT_SECONDS", Some("30"), "how long a bus entry may stay unacknowledged before another consumer retries it"),
    var("BUS_MAX_DELIVERIES", Some("5"), "deliveries of a failing bus entry before it goes to the dead-letter queue"),
    // Secrets: no defaults; `--demo` generates throwaway ones.
    var("JWT_SECRET", None, "signs access tokens; at least 32 characters"),
    var("ENCRYPTION_MASTER_KEY", None, "derives the keys that encrypt provider credentials; at least 32 characters"),
    var("ENCRYPTION_PREVIOUS_KEYS", None, "earlier master keys, comma-separated, still opened during a rotation (`switchboard keys rotate`; docs/runbooks/key-rotation.md)"),
    // HTTP.
    var("HOST", Some("0.0.0.0"), "the address every service binds"),
    var("PORT", None, "overrides the port of the one service a process serves (Fly, Railway); ignored by `serve all`"),
    var("GATEWAY_PORT", Some("8080"), "gateway port"),
    var("API_PORT", Some("8081"), "api port"),
    var("AGENT_WORKER_PORT", Some("8082"), "agent-worker port"),
    var("LEDGER_PORT", Some("8083"), "ledger port"),
    var("MOCK_LLM_PORT", Some("8090"), "mock-llm port"),
    var("METRICS_PORT", None, "serves /metrics and /health/detailed on this port only, apart from the public ones (compose, Kubernetes and Fly use 9100); unset: on each service's port"),
    var("TRUSTED_PROXIES", None, "load balancers or ingresses in front of the api and gateway, as CIDRs separated by commas: only from these peers is `X-Forwarded-For` believed for the client address (rate limits, audit log); unset: the TCP peer is the client"),
    var("CORS_ORIGINS", Some("http://localhost:8081,http://127.0.0.1:8081"), "origins allowed to call the api from a browser, comma-separated"),
    var("MOCK_LLM_URL", Some("http://127.0.0.1:8090/v1"), "the base URL `seed --demo` gives the demo provider entry"),
    var("SHUTDOWN_DRAIN_SECONDS", Some("0"), "after SIGTERM, how long a service keeps serving with /health/ready at 503 so load balancers stop sending (5 behind Kubernetes)"),
    var("SHUTDOWN_TIMEOUT_SECONDS", Some("30"), "after SIGTERM, how long in-flight requests and bus batches may take before the process exits anyway"),
    // Observability.
    var("LOG_LEVEL", Some("info,sqlx=warn"), "a tracing filter: a level, or directives such as info,sb_gateway=debug"),
    var("LOG_FORMAT", Some("pretty"), "`pretty` for people, `json` for log collectors"),
    var("OTEL_EXPORTER_OTLP_ENDPOINT", None, "export spans over OTLP/HTTP (protobuf) to this base URL, e.g. http://otel-collector:4318 (`/v1/traces` is appended); unset: no spans leave the process and `traceparent` is neither read nor sent"),
    var("OTEL_EXPORTER_OTLP_PROTOCOL", Some("http/protobuf"), "the OTLP protocol; only `http/protobuf` is built in (`grpc` is refused at start)"),
    var("OTEL_SERVICE_NAME", Some("switchboard"), "prefix of `service.name` on exported spans: `switchboard-gateway` for `serve gateway`, the prefix alone for `serve all`"),
    var("OTEL_TRACES_SAMPLER", Some("parentbased_always_on"), "which traces are kept: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"),
    var("OTEL_TRACES_SAMPLER_ARG", Some("1.0"), "the fraction of traces kept by the traceidratio samplers (0 to 1)"),
    var("DEPLOYMENT_ENVIRONMENT", Some("development"), "`deployment.environment` on exported spans and the environment of Sentry events (e.g. production, staging)"),
    var("SENTRY_DSN", None, "report errors (5xx answers, error logs outside requests, panics) to Sentry; unset: Sentry is not initialised"),
    // E-mail.
    var("SMTP_HOST", Some("127.0.0.1"), "SMTP server for account e-mail"),
    var("SMTP_PORT", Some("1025"), "SMTP port"),
    var("SMTP_USER", None, "SMTP user name"),
    var("SMTP_PASS", None, "SMTP password"),
    var("EMAIL_FROM", Some("Switchboard <no-reply@switchboard.local>"), "sender of account e-mail"),
    // Agents.
    var("MAX_AGENT_ITERATIONS", Some("25"), "model calls one agent run may make"),
    var("AGENT_TIMEOUT_SECONDS", Some("300"), "wall-clock limit of one agent run"),
    var("WORKSPACE_ROOT", Some("/tmp/switchboard/workspaces"), "where agent runs get their scratch directories"),
    var("MAX_WORKSPACE_SIZE_GB", Some("1"), "disk quota of one agent workspace"),
    var("WORKSPACE_RETENTION_DAYS", Some("7"), "age after which agent workspaces are deleted"),
    var("ALLOWED_BASH_COMMANDS", Some("ls,cat,head,tail,wc,grep,echo"), "commands an agent's shell tool may run, comma-separated"),
    var("APPROVAL_TTL_SECONDS", Some("86400"), "how long an approval waits for a decision; the run then ends timed_out"),
    var("AGENT_GATEWAY_URL", Some("http://127.0.0.1:8080"), "the gateway the agent-worker sends its runs' model calls through"),
    var("AGENT_CONCURRENCY", Some("16"), "agent runs one agent-worker process executes at once"),
    var("AGENT_LEASE_SECONDS", Some("30"), "how long a worker holds a run without renewing; another worker takes it over after that"),
    var("AGENT_TEAM_RPM", Some("0"), "model calls per minute each team of agents may make in a tenant, across workers (0: no limit)"),
    var("AGENT_TOOL_TIMEOUT_SECONDS", Some("30"), "wall-clock limit of one tool call (its processes are killed)"),
    // Ledger.
    var("LEDGER_BATCH_SIZE", Some("10000"), "most usage events the ledger records per transaction (a batch's rollup updates grow with its tenants, workspaces and keys, not its events)"),
    var("LEDGER_CONSUMERS", Some("3"), "concurrent consumers of sb:usage in one ledger process (Redis and Postgres work overlap)"),
    var("LEDGER_RETENTION_MONTHS", Some("24"), "months of usage_ledger kept; older monthly partitions are dropped whole"),
    var("LEDGER_RECONCILE_SECONDS", Some("30"), "how often Redis budget counters are compared with Postgres and repaired"),
    var("LEDGER_TENANT_METRICS", Some("20"), "how many top-spending tenants get a budget_spend_micros series (0: none)"),
    // Gateway.
    var("PUBLIC_URL", Some("http://localhost:8081"), "where people reach the api and dashboard; links in account e-mail start with it"),
    var("API_MAX_BODY_BYTES", Some("1048576"), "largest request body the api accepts (413 above it)"),
    var("API_REQUEST_TIMEOUT_SECONDS", Some("30"), "how long an api request may take before it is answered 503"),
    var("PASSWORD_HASH_CONCURRENCY", Some("4"), "password hashes (Argon2id, 19 MiB each) the api computes at once; signups and logins past it are answered 503 with Retry-After"),
    var("API_REALTIME_FANOUT", Some("true"), "whether this api instance runs the realtime fan-out consumers (group `realtime` on sb:agent-events and sb:budget-alerts); every instance's sockets get every event as long as one instance runs them"),
    var("ACCESS_TOKEN_SECONDS", Some("900"), "lifetime of a JWT access token"),
    var("REFRESH_TOKEN_DAYS", Some("30"), "lifetime of a refresh token (each use rotates it)"),
    var("GRAPHQL_INTROSPECTION", Some("false"), "whether /graphql answers introspection queries (the demo always does)"),
    var("GRAPHQL_MAX_DEPTH", Some("10"), "deepest GraphQL query accepted"),
    var("GRAPHQL_MAX_COMPLEXITY", Some("2000"), "most complex GraphQL query accepted (each field counts 1; a list counts its page size times the fields asked of each item)"),
    var("GATEWAY_MAX_BODY_BYTES", Some("10485760"), "largest request body the gateway accepts (413 above it)"),
    var("PROVIDER_ALLOW_PRIVATE", Some("false"), "`true` lets provider entries' base URLs reach loopback, private, link-local and metadata addresses (the demo's mock-llm, a model server on the host); never a tenant's choice"),
    var("GATEWAY_KEY_CACHE_SECONDS", Some("30"), "how long an API key and its tenant's provider entries stay cached in a gateway (revocation still applies within a second)"),
    var("GATEWAY_UPSTREAM_TIMEOUT_SECONDS", Some("120"), "how long an upstream may keep the gateway waiting (a whole answer, a stream's start, or between a stream's reads) before a 504 or an error that ends the stream"),
    var("GATEWAY_RETRIES", Some("1"), "retries of a retryable upstream failure on the same provider entry before falling back to the next"),
    var("GATEWAY_RETRY_BACKOFF_MS", Some("100"), "first retry delay; doubles with each retry"),
    var("GATEWAY_BREAKER_FAILURES", Some("5"), "consecutive failures after which a provider entry's circuit breaker opens"),
    var("GATEWAY_BREAKER_COOLDOWN_SECONDS", Some("30"), "how long an open circuit breaker skips its provider entry before trying it again"),
    var("GATEWAY_RESERVATION_TTL_SECONDS", Some("600"), "lease of a budget reservation: a crashed request frees its hold after this"),
    var("GATEWAY_SETTLED_HOLD_SECONDS", Some("30"), "how long a settled call's cost stays held in Redis, until the ledger has surely counted it"),
    var("GATEWAY_BUFFER_DIR", Some("/tmp/switchboard/usage-buffer"), "where the gateway keeps usage events while Redis is unreachable"),
    var("GATEWAY_BUFFER_MAX_EVENTS", Some("100000"), "buffered usage events at which the gateway refuses new calls rather than serve them unmetered"),
    // Webhooks.
    var("WEBHOOK_ALLOW_PRIVATE", Some("false"), "`true` lets webhook URLs reach loopback, private, link-local and metadata addresses (local development only)"),
    var("WEBHOOK_MAX_ATTEMPTS", Some("5"), "attempts of one webhook delivery before it goes to the dead-letter queue"),
    var("WEBHOOK_RETRY_BASE_MS", Some("45000"), "delay before a webhook delivery's first retry; each later retry waits four times longer (45 s, 3 min, 12 min, 48 min)"),
    var("WEBHOOK_TIMEOUT_SECONDS", Some("10"), "how long one webhook delivery attempt may take"),
    var("WEBHOOK_DELIVERY_RETENTION_DAYS", Some("30"), "days a finished webhook delivery (succeeded or failed) stays in the delivery log; pending ones are kept"),
    // Budgets.
    var("DEFAULT_BUDGET_USD", Some("100"), "limit of the budget a new tenant starts with, in whole dollars"),
    var("BUDGET_PERIODS", Some("monthly"), "periods of a new tenant's default budgets: daily, monthly, total"),
];

pub fn lookup(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

pub fn default_of(name: &str) -> Option<&'static str> {
    lookup(name).and_then(|v| v.default)
}

pub fn meaning_of(name: &str) -> &'static str {
    lookup(name).map_or("see .env.example", |v| v.meaning)
}
