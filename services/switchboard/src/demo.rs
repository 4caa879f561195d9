//! The demo data: one tenant with a workspace, an owner, a platform admin, a gateway key, a
//! mock-llm provider entry, the default budgets (as every new tenant gets them) and the
//! `demo-assistant` agent.
//!
//! Idempotent: fixed ids and upserts mean a second run duplicates nothing. Passwords and the
//! key are stored only as hashes, so every run issues fresh ones and returns them.
//!
//! The seed changes only accounts it made. Someone who signed up with a demo address first
//! (say `platform@switchboard.local` on a running instance) would otherwise be made platform
//! admin, or the demo tenant's owner, with the session they already hold; the seed refuses
//! instead, before it changes anything, and says which address is in the way.

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
/// The demo accounts' ids: an account with one of them was made by the seed.
pub const ADMIN_ID: UserId =
    UserId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_de32));
pub const PLATFORM_ADMIN_ID: UserId =
    UserId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_de33));
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
    // Both addresses are checked before either account is touched.
    let admin = DemoUser {
        id: ADMIN_ID,
        email: ADMIN_EMAIL,
        name: "Demo Admin",
        platform_admin: false,
    };
    let platform_admin = DemoUser {
        id: PLATFORM_ADMIN_ID,
        email: PLATFORM_ADMIN_EMAIL,
        name: "Platform Admin",
        platform_admin: true,
    };
    let admin_existing = admin.claim(db).await?;
    let platform_existing = platform_admin.claim(db).await?;
    let admin_password = password::generate();
    let platform_admin_password = password::generate();
    let admin_id = admin.upsert(db, admin_existing, &admin_password).await?;
    platform_admin
        .upsert(db, platform_existing, &platform_admin_password)
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

/// One of the demo's two accounts.
struct DemoUser {
    id: UserId,
    email: &'static str,
    name: &'static str,
    platform_admin: bool,
}

impl DemoUser {
    /// The account that has the address now, if the seed may take it over; an error naming the
    /// address if someone else's account has it.
    ///
    /// The seed's own account has the fixed id. An account made by a seed from before the ids
    /// were fixed is recognised by what the seed made it: platform admin already, or the demo
    /// tenant's owner already; taking it over grants nothing new.
    async fn claim(&self, db: &AppPool) -> anyhow::Result<Option<UserId>> {
        let mut tx = db.begin_global().await?;
        let found = sqlx::query!(
            "SELECT id, is_platform_admin FROM users WHERE lower(email) = lower($1)",
            self.email
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let id = UserId::from_uuid(found.id);
        let ours = id == self.id
            || if self.platform_admin {
                found.is_platform_admin
            } else {
                owns_demo_tenant(db, id).await?
            };
        if !ours {
            anyhow::bail!(
                "{} belongs to an account the demo seed did not create (id {id}); the seed leaves it as it is and \
                 will not make it {}. Erase that account (or change its address) if it is not yours, then seed again",
                self.email,
                if self.platform_admin {
                    "a platform admin"
                } else {
                    "the demo tenant's owner"
                }
            );
        }
        Ok(Some(id))
    }

    /// Creates the account with a fixed id, or gives the one [`Self::claim`] found a new password.
    async fn upsert(
        &self,
        db: &AppPool,
        existing: Option<UserId>,
        plain: &str,
    ) -> anyhow::Result<UserId> {
        let hash = password::hash(plain)?;
        let mut tx = db.begin_global().await?;
        let id = match existing {
            Some(id) => {
                sqlx::query!(
                    "UPDATE users SET password_hash = $2, is_platform_admin = $3, updated_at = now()
                      WHERE id = $1",
                    id.as_uuid(),
                    hash,
                    self.platform_admin,
                )
                .execute(&mut *tx)
                .await?;
                id
            }
            // No upsert on the address: an account that took it since `claim` looked makes
            // this fail (a unique violation) rather than be taken over.
            None => {
                sqlx::query!(
                    "INSERT INTO users (id, email, password_hash, display_name, is_platform_admin, email_verified_at)
                     VALUES ($1, $2, $3, $4, $5, now())",
                    self.id.as_uuid(),
                    self.email,
                    hash,
                    self.name,
                    self.platform_admin,
                )
                .execute(&mut *tx)
                .await?;
                self.id
            }
        };
        tx.commit().await?;
        Ok(id)
    }
}

async fn owns_demo_tenant(db: &AppPool, user: UserId) -> anyhow::Result<bool> {
    let mut tx = db.begin(TENANT_ID).await?;
    let owner = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1 AND role = 'owner') AS "owner!""#,
        user.as_uuid()
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(owner)
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
