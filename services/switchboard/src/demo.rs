//! The demo data: one tenant with a workspace, an owner, a platform admin, a gateway key, a
//! mock-llm provider entry, the default budgets (as every new tenant gets them) and the
//! `demo-assistant` agent.
//!
//! Idempotent: fixed ids and upserts mean a second run duplicates nothing. Passwords and the
//! key are stored only as hashes, so every run issues fresh ones and returns them.

use sb_auth::{api_key, password};
use sb_config::Config;
use sb_db::{AppPool, TenantTx};
use sb_kernel::{Micros, TenantId, UserId, WorkspaceId};
use serde::Serialize;
use uuid::Uuid;

pub const TENANT_ID: TenantId =
    TenantId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_de30));
pub const WORKSPACE_ID: WorkspaceId =
    WorkspaceId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_de31));
pub const ADMIN_EMAIL: &str = "admin@demo.switchboard.local";
pub const PLATFORM_ADMIN_EMAIL: &str = "platform@switchboard.local";

/// What the seed created, as `seed --demo --json` prints it.
#[derive(Debug, Serialize)]
pub struct DemoSeed {
    pub tenant_id: TenantId,
    pub tenant_slug: &'static str,
    pub workspace_id: WorkspaceId,
    pub admin_email: &'static str,
    pub admin_password: String,
    pub platform_admin_email: &'static str,
    pub platform_admin_password: String,
    pub api_key: String,
    pub api_key_prefix: String,
    pub provider_name: &'static str,
    pub provider_base_url: String,
    pub models: &'static [&'static str],
    pub budget_limit_micros: Micros,
    /// `BUDGET_PERIODS`; empty (or a zero limit) means no budget.
    pub budget_periods: Vec<String>,
}

pub async fn seed(db: &AppPool, config: &Config) -> anyhow::Result<DemoSeed> {
    let admin_password = password::generate();
    let platform_admin_password = password::generate();
    let admin_id = upsert_user(db, ADMIN_EMAIL, "Demo Admin", &admin_password, false).await?;
    upsert_user(
        db,
        PLATFORM_ADMIN_EMAIL,
        "Platform Admin",
        &platform_admin_password,
        true,
    )
    .await?;

    let key = api_key::generate();
    let budget = Micros::from_dollars(config.budgets.default_budget_usd);
    let mut tx = db.begin(TENANT_ID).await?;
    upsert_tenant_rows(&mut tx, admin_id, &config.mock_llm_url, &key).await?;
    // The tenant's default budgets, as every new tenant gets them.
    sb_api::core::budgets::create_defaults(&mut tx, &config.budgets)
        .await
        .map_err(|e| anyhow::anyhow!("could not create the demo tenant's budgets: {e:?}"))?;
    tx.commit().await?;
    // Running gateways drop the tenant's cached keys and entries: the old key stops at once.
    if let Err(e) = notify_gateways(config).await {
        tracing::warn!(error = %e, "could not tell the gateways (Redis unreachable); the previous demo key works until their cache expires");
    }

    Ok(DemoSeed {
        tenant_id: TENANT_ID,
        tenant_slug: "demo",
        workspace_id: WORKSPACE_ID,
        admin_email: ADMIN_EMAIL,
        admin_password,
        platform_admin_email: PLATFORM_ADMIN_EMAIL,
        platform_admin_password,
        api_key: key.secret,
        api_key_prefix: key.prefix,
        provider_name: "mock-llm",
        provider_base_url: config.mock_llm_url.clone(),
        models: sb_mock_llm::MODELS,
        budget_limit_micros: budget,
        budget_periods: config.budgets.periods.clone(),
    })
}

/// Creates the user, or resets the password of the one with that e-mail.
async fn upsert_user(
    db: &AppPool,
    email: &str,
    name: &str,
    plain: &str,
    platform_admin: bool,
) -> anyhow::Result<UserId> {
    let hash = password::hash(plain)?;
    let mut tx = db.begin_global().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO users (id, email, password_hash, display_name, is_platform_admin, email_verified_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT ((lower(email))) DO UPDATE
             SET password_hash = EXCLUDED.password_hash, is_platform_admin = EXCLUDED.is_platform_admin, updated_at = now()
         RETURNING id",
        UserId::new().as_uuid(),
        email,
        hash,
        name,
        platform_admin,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(UserId::from_uuid(id))
}

async fn notify_gateways(config: &Config) -> anyhow::Result<()> {
    use sb_contracts::invalidation::{Invalidation, channel};
    use secrecy::ExposeSecret;
    let client = redis::Client::open(config.redis.url.expose_secret())?;
    let publish = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg(channel(&config.redis.key_prefix))
            .arg(Invalidation::Tenant(TENANT_ID.as_uuid()).encode())
            .query_async::<i64>(&mut conn)
            .await
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), publish).await??;
    Ok(())
}

async fn upsert_tenant_rows(
    tx: &mut TenantTx,
    admin: UserId,
    mock_llm_url: &str,
    key: &api_key::NewApiKey,
) -> anyhow::Result<()> {
    let tenant = tx.tenant().as_uuid();
    sqlx::query!(
        "INSERT INTO tenants (id, name, slug) VALUES ($1, 'Demo', 'demo') ON CONFLICT (id) DO NOTHING",
        tenant
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = 'owner'",
        tenant,
        admin.as_uuid(),
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO workspaces (id, tenant_id, name) VALUES ($1, $2, 'Default') ON CONFLICT (id) DO NOTHING",
        WORKSPACE_ID.as_uuid(),
        tenant,
    )
    .execute(&mut **tx)
    .await?;
    // mock-llm speaks all three dialects and needs no secret. Each model gets an entry in the
    // dialect it stands in for, so it is called (and priced) as the real one would be.
    for (name, provider, base_url) in [
        ("mock-llm", "openai", mock_llm_url),
        (
            "mock-llm-anthropic",
            "anthropic",
            mock_llm_url.trim_end_matches("/v1"),
        ),
        (
            "mock-llm-gemini",
            "gemini",
            mock_llm_url.trim_end_matches("/v1"),
        ),
    ] {
        let models: Vec<String> = sb_mock_llm::MODELS
            .iter()
            .filter(|m| mock_dialect(m) == provider)
            .map(|m| (*m).to_owned())
            .collect();
        sqlx::query!(
            "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, name) DO UPDATE SET provider = EXCLUDED.provider, base_url = EXCLUDED.base_url, models = EXCLUDED.models, updated_at = now()",
            Uuid::now_v7(),
            tenant,
            name,
            provider,
            base_url,
            &models,
        )
        .execute(&mut **tx)
        .await?;
    }
    // The key row is kept; its secret is replaced (the old one stops working).
    sqlx::query!(
        "INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash, created_by)
         VALUES ($1, $2, $3, 'demo', $4, $5, $6)
         ON CONFLICT (tenant_id, name) DO UPDATE SET prefix = EXCLUDED.prefix, key_hash = EXCLUDED.key_hash, revoked_at = NULL",
        Uuid::now_v7(),
        tenant,
        WORKSPACE_ID.as_uuid(),
        key.prefix,
        &key.hash[..],
        admin.as_uuid(),
    )
    .execute(&mut **tx)
    .await?;
    // The demo agent: mock-llm's scripted model, every tool; those that change the
    // workspace or run a command wait for a person's approval.
    sqlx::query!(
        "INSERT INTO agents (id, tenant_id, name, model, instructions, tools, approval_tools)
         VALUES ($1, $2, 'demo-assistant', 'mock-agent',
                 'Follow the script in the first message, one line per turn.', $3, $4)
         ON CONFLICT (tenant_id, name) DO UPDATE
             SET model = EXCLUDED.model, tools = EXCLUDED.tools,
                 approval_tools = EXCLUDED.approval_tools, updated_at = now()",
        Uuid::now_v7(),
        tenant,
        &sb_agents::TOOL_NAMES
            .iter()
            .map(|t| (*t).to_owned())
            .collect::<Vec<_>>(),
        &DEMO_APPROVAL_TOOLS
            .iter()
            .map(|t| (*t).to_owned())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO audit_log (id, tenant_id, actor_user_id, action, target_type, target_id)
         VALUES ($1, $2, NULL, 'demo.seeded', 'tenant', $3)",
        Uuid::now_v7(),
        tenant,
        tenant.to_string(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The demo agent's tools that wait for approval.
const DEMO_APPROVAL_TOOLS: &[&str] = &["write_file", "append_file", "delete_file", "bash"];

/// The dialect a mock model stands in for (its price is that provider's).
fn mock_dialect(model: &str) -> &'static str {
    if model.contains("claude") {
        "anthropic"
    } else if model.contains("gemini") {
        "gemini"
    } else {
        "openai"
    }
}
