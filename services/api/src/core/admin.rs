//! Platform administration: creating and suspending tenants, and the bus's dead-letter queues.
//! Every action here is audited; a dead-letter operation as a platform action (no tenant).

use sb_bus::{BusError, DeadLetter, Selection};
use sb_kernel::{Role, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::audit::{self, Actor, Entry};
use crate::core::invalidation::{self, Stale};
use crate::core::invitations;
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
    /// The first owner: invited by e-mail, an owner once they accept from a verified account
    /// with this address (whether or not it has an account today).
    pub owner_email: String,
}

/// Creates a tenant and a pending owner invitation for `owner_email`, then (once committed)
/// mails the link. Nobody is attached at once, not even an existing account: an account may
/// have been signed up with that address by someone else (issue #20).
pub async fn create_tenant(
    state: &ApiState,
    actor: Actor<'_>,
    req: AdminNewTenant,
) -> ApiResult<TenantView> {
    let new = NewTenant {
        name: req.name,
        slug: req.slug,
        time_zone: req.time_zone,
    };
    let mut checks = Checks::new();
    tenants::check_new(&mut checks, "", &new);
    checks.email("owner_email", &req.owner_email).finish()?;
    let mut tx = state.infra.app_db.begin(TenantId::new()).await?;
    let view = tenants::create(&mut tx, &new, &state.budgets).await?;
    let invitation =
        invitations::create(&mut tx, actor.user, req.owner_email.trim(), Role::Owner).await?;
    let entry = Entry::new("tenant.create", "tenant", view.id)
        .details(serde_json::json!({"slug": view.slug, "via": "admin"}));
    audit::record(&mut tx, actor, entry).await?;
    let entry = Entry::new("invitation.create", "invitation", invitation.view.id)
        .details(serde_json::json!({"role": Role::Owner.as_str()}));
    audit::commit(tx, actor, entry).await?;
    invitation.notify(state, &view.name);
    Ok(view)
}

/// Suspends (`suspended`) or reinstates (`active`) a tenant, then tells the gateways (a
/// suspended tenant's keys stop working).
pub async fn set_status(
    state: &ApiState,
    actor: Actor<'_>,
    tenant: TenantId,
    status: &str,
) -> ApiResult<TenantView> {
    let mut tx = state.infra.app_db.begin(tenant).await?;
    let view = tenants::set_status(&mut tx, status).await?;
    let action = if status == "active" {
        "tenant.reinstate"
    } else {
        "tenant.suspend"
    };
    audit::commit(tx, actor, Entry::new(action, "tenant", tenant)).await?;
    invalidation::publish(state, tenant, Stale::Tenant).await;
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
fn stream(name: &str) -> ApiResult<&'static str> {
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

/// Dead letters of `stream`, oldest first; `limit` 1 to 1000 (default 100).
pub async fn dead_letters(
    state: &ApiState,
    stream_name: &str,
    limit: Option<usize>,
) -> ApiResult<Vec<DeadLetterView>> {
    let stream = stream(stream_name)?;
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 1000"));
    }
    let letters = state
        .infra
        .bus
        .dlq_list(stream, limit)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(letters.into_iter().map(Into::into).collect())
}

/// Which dead letters: one by id, or all of the stream's when `id` is absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqAction {
    pub stream: String,
    pub id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DlqOutcome {
    /// How many dead letters were replayed or purged.
    pub count: usize,
}

/// What to do with dead letters.
#[derive(Clone, Copy, Debug)]
pub enum DlqOperation {
    /// Put them back on their stream for another try.
    Replay,
    /// Delete them for good.
    Purge,
}

impl DlqOperation {
    fn action(self) -> &'static str {
        match self {
            Self::Replay => "dlq.replay",
            Self::Purge => "dlq.purge",
        }
    }
}

/// Replays or purges the dead letters `req` selects, and records it: a platform action, so an
/// audit row without a tenant.
pub async fn handle_dead_letters(
    state: &ApiState,
    actor: Actor<'_>,
    operation: DlqOperation,
    req: DlqAction,
) -> ApiResult<DlqOutcome> {
    let stream = stream(&req.stream)?;
    let selection = req.id.clone().map_or(Selection::All, Selection::One);
    let bus = &state.infra.bus;
    let count = match operation {
        DlqOperation::Replay => bus
            .dlq_replay(stream, &selection)
            .await
            .map(|done| done.len()),
        DlqOperation::Purge => bus.dlq_purge(stream, &selection).await,
    }
    .map_err(|e| match e {
        BusError::NoSuchDeadLetter { .. } => ApiError::not_found("dead letter"),
        other => ApiError::unavailable(other),
    })?;
    let tx = state.infra.app_db.begin_global().await?;
    let entry = Entry::new(operation.action(), "dlq", stream)
        .details(serde_json::json!({"id": req.id, "count": count}));
    audit::commit(tx, actor, entry).await?;
    Ok(DlqOutcome { count })
}
