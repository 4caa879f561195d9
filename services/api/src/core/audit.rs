//! The audit log: one row per state-changing action, written in the transaction of the change
//! (so a change and its record commit or vanish together). The application role may insert and
//! read rows, never update or delete them.
//!
//! The transaction decides the row's tenant (`AuditScope`): a tenant's transaction files it
//! under that tenant, the global one (account and platform actions) under none.

use std::future::Future;
use std::ops::DerefMut;

use sb_db::{DbError, GlobalTx, TenantTx};
use sb_kernel::{TenantId, UserId};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Where a request came from, for the audit log (the HTTP layer fills it in).
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    /// What rate limits count this client under (the address, or its /64 for IPv6).
    pub limit_key: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Who acted, and from where.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub user: Option<UserId>,
    pub meta: &'a RequestMeta,
}

impl<'a> Actor<'a> {
    /// Someone not signed in (signup, login, a link from an e-mail).
    pub fn anonymous(meta: &'a RequestMeta) -> Self {
        Self { user: None, meta }
    }

    /// The same request, acting as `user` (an account action whose user was only just known).
    pub fn as_user(self, user: UserId) -> Self {
        Self {
            user: Some(user),
            ..self
        }
    }
}

/// What was done to what.
pub struct Entry<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: String,
    pub details: Value,
}

impl<'a> Entry<'a> {
    pub fn new(action: &'a str, target_type: &'a str, target_id: impl ToString) -> Self {
        Self {
            action,
            target_type,
            target_id: target_id.to_string(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_value(details).unwrap_or(Value::Null);
        self
    }
}

/// A transaction an audit row can be written in, and the tenant the row then belongs to (the
/// row-level policy on `audit_log` accepts no other).
pub trait AuditScope: DerefMut<Target = PgConnection> + Send {
    fn audit_tenant(&self) -> Option<TenantId>;

    fn commit(self) -> impl Future<Output = Result<(), DbError>> + Send;
}

impl AuditScope for TenantTx {
    fn audit_tenant(&self) -> Option<TenantId> {
        Some(self.tenant())
    }

    fn commit(self) -> impl Future<Output = Result<(), DbError>> + Send {
        TenantTx::commit(self)
    }
}

impl AuditScope for GlobalTx {
    fn audit_tenant(&self) -> Option<TenantId> {
        None
    }

    fn commit(self) -> impl Future<Output = Result<(), DbError>> + Send {
        GlobalTx::commit(self)
    }
}

/// Records `entry` in `tx`'s transaction.
pub async fn record<T: AuditScope>(
    tx: &mut T,
    actor: Actor<'_>,
    entry: Entry<'_>,
) -> ApiResult<()> {
    let tenant = tx.audit_tenant().map(|t| t.as_uuid());
    // The address is bound as text and cast in SQL (`$7::text::inet`): without the cast to
    // text the macro would want a Rust type for `inet`, which needs another sqlx feature.
    sqlx::query!(
        "INSERT INTO audit_log (id, tenant_id, actor_user_id, action, target_type, target_id,
                                ip, user_agent, request_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8, $9, $10)",
        Uuid::now_v7(),
        tenant,
        actor.user.map(|u| u.as_uuid()),
        entry.action,
        entry.target_type,
        entry.target_id,
        actor.meta.ip.as_deref(),
        actor.meta.user_agent.as_deref(),
        actor.meta.request_id.as_deref(),
        entry.details,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records `entry` and commits: the end of every state-changing action.
pub async fn commit<T: AuditScope>(mut tx: T, actor: Actor<'_>, entry: Entry<'_>) -> ApiResult<()> {
    record(&mut tx, actor, entry).await?;
    Ok(tx.commit().await?)
}

/// One audit row as the api shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
pub struct AuditRow {
    pub id: Uuid,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[graphql(skip)]
    pub details: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this action, such as `api_key.revoke`.
    pub action: Option<String>,
    /// Only actions by this user.
    pub actor: Option<Uuid>,
    /// Only actions on this kind of target, such as `api_key`.
    pub target_type: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRow>,
    /// Pass as `cursor` for the next page; none on the last page.
    pub next_cursor: Option<String>,
}

/// A page of the tenant's audit log, newest first. The cursor is the last row's id: ids are
/// UUIDv7, so they order like their creation times.
pub async fn list(tx: &mut TenantTx, q: &AuditQuery) -> ApiResult<AuditPage> {
    crate::nul::check_text("action", q.action.as_deref())?;
    crate::nul::check_text("target_type", q.target_type.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 200"));
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| ApiError::invalid("cursor", "not a cursor this api gave"))?;
    let mut items = sqlx::query_as!(
        AuditRow,
        "SELECT id, actor_user_id, action, target_type, target_id, host(ip) AS ip, user_agent,
                request_id, details, created_at
           FROM audit_log
          WHERE ($1::text IS NULL OR action = $1)
            AND ($2::uuid IS NULL OR actor_user_id = $2)
            AND ($3::text IS NULL OR target_type = $3)
            AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5",
        q.action.as_deref(),
        q.actor,
        q.target_type.as_deref(),
        cursor,
        limit + 1,
    )
    .fetch_all(&mut **tx)
    .await?;
    let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(AuditPage { items, next_cursor })
}
