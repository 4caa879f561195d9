//! Platform administration: creating and suspending tenants, and the bus's dead-letter queues.

use sb_bus::{DeadLetter, Selection};
use sb_kernel::{Role, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::audit::{self, Actor, Entry};
use crate::core::tenants::{self, NewTenant, TenantView};
use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminNewTenant {
    pub name: String,
    pub slug: String,
    pub time_zone: Option<String>,
    /// The first owner; an account is made (and invited by e-mail) if none has this address.
    pub owner_email: String,
}

/// Creates a tenant with its first owner; returns it and, for a new account, the invitee.
pub async fn create_tenant(
    state: &ApiState,
    actor: Actor<'_>,
    req: AdminNewTenant,
) -> ApiResult<(TenantView, Option<(Uuid, String)>)> {
    let new = NewTenant {
        name: req.name,
        slug: req.slug,
        time_zone: req.time_zone,
    };
    let mut checks = Checks::new();
    tenants::check_new(&mut checks, "", &new);
    checks.email("owner_email", &req.owner_email).finish()?;
    let id = TenantId::new();
    let mut tx = state.infra.app_db.begin(id).await?;
    let existing: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM users WHERE lower(email) = lower($1) AND erased_at IS NULL")
            .bind(req.owner_email.trim())
            .fetch_optional(&mut *tx)
            .await?;
    let (owner, invited) = match existing {
        Some((owner,)) => (owner, None),
        None => {
            let owner = Uuid::now_v7();
            sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
                .bind(owner)
                .bind(req.owner_email.trim())
                .execute(&mut *tx)
                .await?;
            (owner, Some((owner, req.owner_email.trim().to_owned())))
        }
    };
    let view = tenants::create(&mut tx, id, &new, owner, Role::Owner).await?;
    audit::record(
        &mut tx,
        Some(id.as_uuid()),
        actor,
        Entry::new("tenant.create", "tenant", id.as_uuid())
            .details(serde_json::json!({"slug": view.slug, "owner": owner, "via": "admin"})),
    )
    .await?;
    tx.commit().await?;
    Ok((view, invited))
}

/// Suspends (`suspended`) or reinstates (`active`) a tenant.
pub async fn set_status(
    state: &ApiState,
    actor: Actor<'_>,
    tenant: Uuid,
    status: &str,
) -> ApiResult<TenantView> {
    let mut tx = state
        .infra
        .app_db
        .begin(TenantId::from_uuid(tenant))
        .await?;
    let view = tenants::set_status(&mut tx, status).await?;
    let action = if status == "active" {
        "tenant.reinstate"
    } else {
        "tenant.suspend"
    };
    audit::record(
        &mut tx,
        Some(tenant),
        actor,
        Entry::new(action, "tenant", tenant),
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: String,
    pub stream: String,
    pub entry_id: String,
    pub group: String,
    pub attempts: u64,
    pub error: String,
    pub failed_at: String,
    /// The original entry's event type and tenant, when it was a well-formed envelope.
    pub event_type: Option<String>,
    pub tenant_id: Option<String>,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        Self {
            event_type: d.envelope.as_ref().map(|e| e.kind.clone()),
            tenant_id: d.envelope.as_ref().map(|e| e.tenant_id.to_string()),
            id: d.id,
            stream: d.stream,
            entry_id: d.entry_id,
            group: d.group,
            attempts: d.attempts,
            error: d.error,
            failed_at: d.failed_at,
        }
    }
}

/// Checks that `stream` is one of the platform's streams.
pub fn stream(name: &str) -> ApiResult<&'static str> {
    sb_contracts::streams::ALL
        .iter()
        .find(|s| **s == name)
        .copied()
        .ok_or_else(|| {
            ApiError::invalid(
                "stream",
                format!("must be one of {}", sb_contracts::streams::ALL.join(", ")),
            )
        })
}

/// `All` without an id; one dead letter with it.
pub fn selection(id: Option<String>) -> Selection {
    id.map_or(Selection::All, Selection::One)
}

/// Records a dead-letter operation: a platform action, so a row without a tenant.
pub async fn audit_dlq(
    state: &ApiState,
    actor: Actor<'_>,
    action: &str,
    stream: &str,
    id: Option<String>,
    count: usize,
) -> ApiResult<()> {
    let mut tx = state.infra.app_db.begin_global().await?;
    audit::record(
        &mut tx,
        None,
        actor,
        Entry::new(action, "dlq", stream).details(serde_json::json!({"id": id, "count": count})),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
