//! `switchboard doctor`: the operators' security checklist, checked against a configuration
//! and the live database and Redis. Each check passes or fails with how to fix it.

use std::collections::HashMap;

use sb_config::{Config, Source};
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection};

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when passed).
    pub fix: String,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: true,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: false,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    fn from(name: &str, ok: bool, detail: String, fix: &str) -> Self {
        if ok {
            Self::pass(name, detail)
        } else {
            Self::fail(name, detail, fix)
        }
    }
}

/// Bits of entropy a secret must carry (an estimate from its characters' frequencies).
const MIN_SECRET_BITS: f64 = 128.0;

/// Runs every check. A configuration that does not load still gets the checks that do not
/// depend on it.
pub async fn checks(source: &Source) -> Vec<Check> {
    let mut out = Vec::new();
    let config = match Config::from_source(source, false) {
        Ok(config) => {
            out.push(Check::pass("configuration", "every variable is valid"));
            Some(config)
        }
        Err(e) => {
            out.push(Check::fail(
                "configuration",
                e.to_string(),
                "fix the variable named above (see .env.example)",
            ));
            None
        }
    };
    let Some(config) = config else {
        return out;
    };
    out.extend(secret_checks(&config));
    out.extend(transport_checks(&config));
    out.push(Check::from(
        "CORS origins",
        !config.cors_origins.iter().any(|o| o == "*"),
        format!("CORS_ORIGINS = {}", config.cors_origins.join(",")),
        "list the dashboard's origins in CORS_ORIGINS instead of *",
    ));
    out.push(trusted_proxies(&config));
    out.push(Check::from(
        "webhook addresses",
        !config.webhooks.allow_private,
        format!("WEBHOOK_ALLOW_PRIVATE = {}", config.webhooks.allow_private),
        "set WEBHOOK_ALLOW_PRIVATE=false outside local development: with it, tenants' webhooks \
         may call loopback, private and cloud-metadata addresses",
    ));
    out.push(Check::from(
        "provider addresses",
        !config.gateway.provider_allow_private,
        format!(
            "PROVIDER_ALLOW_PRIVATE = {}",
            config.gateway.provider_allow_private
        ),
        "set PROVIDER_ALLOW_PRIVATE=false unless a provider must be reached on a private network \
         (the demo's mock-llm): with it, tenants' provider entries may call loopback, private \
         and cloud-metadata addresses with their secrets",
    ));
    out.push(Check::from(
        "internal endpoints",
        config.listen.metrics_port.is_some(),
        match config.listen.metrics_port {
            Some(port) => format!("/metrics and /health/detailed on METRICS_PORT = {port}"),
            None => "/metrics and /health/detailed on every service's public port".to_owned(),
        },
        "set METRICS_PORT (the deploy files use 9100) and keep that port off the load balancer: \
         the metrics and the detailed health describe the whole platform to anyone who asks",
    ));
    out.push(Check::from(
        "GraphQL introspection",
        !config.api.graphql_introspection || config.demo,
        format!(
            "GRAPHQL_INTROSPECTION = {}",
            config.api.graphql_introspection
        ),
        "set GRAPHQL_INTROSPECTION=false in production: the schema is in the source and the \
         dashboard does not need it, and it tells a stranger every field to try",
    ));
    out.extend(database_checks(&config).await);
    out.push(public_url(&config));
    out.push(redis_persistence(&config).await);
    out.push(agent_sandbox().await);
    out
}

/// `PUBLIC_URL` starts every link in account e-mail (password reset, verification, invitations):
/// left at its default, those links point at the reader's own machine.
fn public_url(config: &Config) -> Check {
    let name = "public URL";
    let value = &config.api.public_url;
    let local = url::Url::parse(value)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_none_or(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host.to_ascii_lowercase().ends_with(".localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
        });
    Check::from(
        name,
        !local,
        format!("PUBLIC_URL = {value}"),
        "set PUBLIC_URL to the address people reach the api and dashboard at (https://…): \
         links in password-reset, verification and invitation e-mail start with it",
    )
}

/// How the agent-worker on this host would confine its tools' commands: the same probe it
/// runs at start (a command must print a marker from inside the sandbox).
async fn agent_sandbox() -> Check {
    use sb_agent_worker::sandbox::{Sandbox, SandboxMode};
    let name = "agent tools sandbox";
    let probed =
        tokio::task::spawn_blocking(|| Sandbox::detect(sb_agent_worker::trampoline())).await;
    match probed.map(|s| s.mode()) {
        Ok(SandboxMode::Bubblewrap) => Check::pass(name, "bubblewrap"),
        Ok(SandboxMode::Landlock) => Check::pass(
            name,
            "Landlock + seccomp + rlimits (bubblewrap cannot start here: user namespaces refused)",
        ),
        Ok(SandboxMode::Unavailable) => Check::fail(
            name,
            "unavailable: agents' bash tool is refused (sandbox_unavailable)",
            "install bubblewrap (apt-get install bubblewrap) on a host that allows unprivileged \
             user namespaces, or run on a kernel with Landlock (5.13+) and seccomp",
        ),
        Err(e) => Check::fail(name, e.to_string(), "run doctor again"),
    }
}

fn secret_checks(config: &Config) -> Vec<Check> {
    let secrets = [
        ("JWT_SECRET", config.secrets.jwt_secret.expose_secret()),
        (
            "ENCRYPTION_MASTER_KEY",
            config.secrets.encryption_master_key.expose_secret(),
        ),
    ];
    let mut out: Vec<Check> = secrets
        .iter()
        .map(|(name, value)| {
            let bits = entropy_bits(value);
            Check::from(
                &format!("{name} strength"),
                value.chars().count() >= 32 && bits >= MIN_SECRET_BITS,
                format!("{} characters, about {bits:.0} bits of entropy (at least {MIN_SECRET_BITS:.0} needed)", value.chars().count()),
                "generate one with `openssl rand -base64 48`",
            )
        })
        .collect();
    out.push(Check::from(
        "secrets differ",
        secrets[0].1 != secrets[1].1,
        "JWT_SECRET and ENCRYPTION_MASTER_KEY".into(),
        "give JWT_SECRET and ENCRYPTION_MASTER_KEY different values",
    ));
    out
}

fn transport_checks(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    for (name, url) in [
        ("DATABASE_URL", config.database.app_url.expose_secret()),
        (
            "DATABASE_SYSTEM_URL",
            config.database.system_url.expose_secret(),
        ),
    ] {
        let parsed = url::Url::parse(url).ok();
        let host = parsed
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let query: HashMap<String, String> = parsed
            .as_ref()
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let sslmode = query.get("sslmode").map_or("prefer", String::as_str);
        let ok = is_local(&host) || matches!(sslmode, "require" | "verify-ca" | "verify-full");
        out.push(Check::from(
            &format!("{name} encryption"),
            ok,
            format!("host {host}{}, sslmode={sslmode}", local_note(&host)),
            "add ?sslmode=require (or verify-full) to the URL of a remote database",
        ));
    }
    let redis = config.redis.url.expose_secret();
    let parsed = url::Url::parse(redis).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let scheme = parsed.as_ref().map_or("", url::Url::scheme);
    out.push(Check::from(
        "REDIS_URL encryption",
        is_local(&host) || scheme == "rediss",
        format!("host {host}{}, scheme {scheme}", local_note(&host)),
        "use rediss:// (TLS) for a remote Redis",
    ));
    out
}

async fn database_checks(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    match PgConnection::connect(config.database.app_url.expose_secret()).await {
        Err(e) => out.push(Check::fail(
            "database reachable",
            format!("DATABASE_URL: {e}"),
            "start Postgres, or fix DATABASE_URL",
        )),
        Ok(mut conn) => {
            out.push(Check::pass(
                "database reachable",
                "connected as the application role",
            ));
            out.extend(catalog_checks(&mut conn).await.unwrap_or_else(|e| {
                vec![Check::fail(
                    "database catalog",
                    e.to_string(),
                    "run `switchboard migrate` first",
                )]
            }));
            let _ = conn.close().await;
        }
    }
    out.push(migrations_current(config).await);
    out
}

async fn catalog_checks(conn: &mut PgConnection) -> Result<Vec<Check>, sqlx::Error> {
    let mut out = Vec::new();
    let tables = sqlx::query!(
        r#"SELECT c.relname::text AS "name!", c.relrowsecurity, c.relforcerowsecurity
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            ORDER BY 1"#
    )
    .fetch_all(&mut *conn)
    .await?;
    let unprotected: Vec<&str> = tables
        .iter()
        .filter(|t| !(t.relrowsecurity && t.relforcerowsecurity))
        .map(|t| t.name.as_str())
        .collect();
    out.push(Check::from(
        "row-level security",
        !tables.is_empty() && unprotected.is_empty(),
        if unprotected.is_empty() {
            format!("enabled and forced on all {} tables with tenant_id", tables.len())
        } else {
            format!("not enabled and forced on: {}", unprotected.join(", "))
        },
        "run `switchboard migrate`; if it is current, restore with ALTER TABLE … ENABLE / FORCE ROW LEVEL SECURITY",
    ));
    let role = sqlx::query!(
        r#"SELECT r.rolname::text AS "name!", r.rolsuper AS "superuser!", r.rolbypassrls AS "bypass_rls!",
                  (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS "owned!"
             FROM pg_roles r WHERE r.rolname = current_user"#
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut problems = Vec::new();
    if role.superuser {
        problems.push("is a superuser");
    }
    if role.bypass_rls {
        problems.push("has BYPASSRLS");
    }
    if role.owned > 0 {
        problems.push("owns tables");
    }
    out.push(Check::from(
        "application role",
        problems.is_empty(),
        if problems.is_empty() {
            format!("{} is not a superuser, owns nothing and cannot bypass RLS", role.name)
        } else {
            format!("{} {}", role.name, problems.join(", "))
        },
        "point DATABASE_URL at switchboard_app (created by `switchboard migrate`), never at the owner",
    ));
    let admins =
        sqlx::query_scalar!(r#"SELECT count(*) AS "admins!" FROM users WHERE is_platform_admin"#)
            .fetch_one(&mut *conn)
            .await?;
    out.push(Check::from(
        "platform admin",
        admins > 0,
        format!("{admins} platform admin(s)"),
        "create one with `switchboard admin create --email you@example.com` (or `switchboard seed --demo` for the demo)",
    ));
    Ok(out)
}

async fn migrations_current(config: &Config) -> Check {
    let name = "migrations current";
    let owner = config.database.owner_url.expose_secret();
    let mut conn = match PgConnection::connect(owner).await {
        Ok(conn) => conn,
        Err(e) => {
            return Check::fail(
                name,
                format!("DATABASE_OWNER_URL: {e}"),
                "set DATABASE_OWNER_URL to the role that runs migrations",
            );
        }
    };
    // A runtime query: `_sqlx_migrations` exists only once the migrator has run, and the
    // database the query macros are checked against is migrated with psql, so it has none.
    let applied: Result<Vec<i64>, _> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await;
    let _ = conn.close().await;
    let known: Vec<i64> = sb_db::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    match applied {
        Ok(applied) => {
            let missing = known.iter().filter(|v| !applied.contains(v)).count();
            Check::from(
                name,
                missing == 0,
                format!("{} of {} applied", known.len() - missing, known.len()),
                "run `switchboard migrate`",
            )
        }
        Err(e) => Check::fail(name, e.to_string(), "run `switchboard migrate`"),
    }
}

async fn redis_persistence(config: &Config) -> Check {
    let name = "Redis persistence";
    let result: Result<(bool, bool), redis::RedisError> = async {
        let client = redis::Client::open(config.redis.url.expose_secret())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await?;
        let aof = info.lines().any(|l| l.trim() == "aof_enabled:1");
        // Managed Redis may refuse CONFIG; then only AOF counts.
        let save: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let rdb = save.get(1).is_some_and(|s| !s.trim().is_empty());
        Ok((aof, rdb))
    }
    .await;
    match result {
        Err(e) => Check::fail(
            name,
            format!("REDIS_URL: {e}"),
            "start Redis, or fix REDIS_URL",
        ),
        Ok((true, _)) => Check::pass(name, "append-only file on"),
        Ok((false, true)) => Check::pass(
            name,
            "RDB snapshots only: budget counters since the last snapshot are rebuilt from Postgres after a crash",
        ),
        Ok((false, false)) => Check::fail(
            name,
            "no AOF and no RDB snapshots: a restart loses streams not yet consumed",
            "run Redis with --appendonly yes",
        ),
    }
}

/// `TRUSTED_PROXIES` may name the load balancers' network, never the internet: a trusted
/// range is one whose clients may write any address into `X-Forwarded-For`, and so escape
/// the per-IP limits and forge the audit log's addresses.
fn trusted_proxies(config: &Config) -> Check {
    let ranges = &config.trusted_proxies;
    let too_wide: Vec<String> = ranges
        .iter()
        .filter(|r| match r.network() {
            std::net::IpAddr::V4(_) => r.size_bits() > 24,
            std::net::IpAddr::V6(_) => r.size_bits() > 121,
        })
        .map(ToString::to_string)
        .collect();
    let listed = if ranges.is_empty() {
        "none: every client is its TCP peer (behind a proxy, all clients would share its address)"
            .to_owned()
    } else {
        ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    Check::from(
        "trusted proxies",
        too_wide.is_empty(),
        format!("TRUSTED_PROXIES = {listed}"),
        &format!(
            "narrow TRUSTED_PROXIES to the load balancers' own addresses or subnet ({} is wider \
             than a /8 or an IPv6 /7): every client in a trusted range may choose the address \
             rate limits and the audit log see",
            too_wide.join(", ")
        ),
    )
}

fn local_note(host: &str) -> &'static str {
    if is_local(host) {
        " (local: TLS not required)"
    } else {
        ""
    }
}

/// Loopback or a Unix socket: traffic that never leaves the machine.
fn is_local(host: &str) -> bool {
    matches!(host, "" | "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// Length × the Shannon entropy of the secret's character distribution: a rough estimate that
/// catches repeated characters and short alphabets, not dictionary words.
pub fn entropy_bits(secret: &str) -> f64 {
    let total = secret.chars().count();
    if total == 0 {
        return 0.0;
    }
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in secret.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let per_char: f64 = counts
        .values()
        .map(|&n| {
            let p = n as f64 / total as f64;
            -p * p.log2()
        })
        .sum();
    per_char * total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_catches_repetition() {
        assert!(entropy_bits(&"a".repeat(64)) < 1.0);
        assert!(entropy_bits("abababababababababababababababab") < MIN_SECRET_BITS);
        assert!(entropy_bits("q8Vt3nZ0pXw7LmK2rY9sB4dF6hJ1gC5eTuAiOoPz") >= MIN_SECRET_BITS);
        assert!(is_local("127.0.0.1") && is_local("localhost") && !is_local("db.example.com"));
    }

    #[test]
    fn trusting_the_internet_as_a_proxy_fails() {
        let check = |ranges: &str| {
            let source = Source::from_pairs([("TRUSTED_PROXIES", ranges)]);
            trusted_proxies(&Config::from_source(&source, true).unwrap())
        };
        assert!(check("").passed);
        assert!(check("10.0.0.0/8, 172.16.0.0/12, fd00::/8").passed);
        let open = check("10.0.0.0/8,0.0.0.0/0");
        assert!(!open.passed);
        assert!(open.fix.contains("0.0.0.0/0"), "{}", open.fix);
        assert!(!check("::/0").passed);
    }
}
