//! The audit log: one row per state-changing action, written in the transaction of the change
//! (so a change and its record commit or vanish together). The application role may insert and
//! read rows, never update or delete them.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::RequestMeta;

/// Who acted, and from where.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub user: Option<Uuid>,
    pub meta: &'a RequestMeta,
}

impl<'a> Actor<'a> {
    /// The same request, acting as `user` (an account action whose user was only just known).
    pub fn as_user(self, user: Uuid) -> Self {
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

/// Records `entry` in `conn`'s transaction; `tenant` is `None` for account actions.
pub async fn record(
    conn: &mut PgConnection,
    tenant: Option<Uuid>,
    actor: Actor<'_>,
    entry: Entry<'_>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, actor_user_id, action, target_type, target_id,
                                ip, user_agent, request_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8, $9, $10)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(actor.user)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(actor.meta.ip.as_deref())
    .bind(actor.meta.user_agent.as_deref())
    .bind(actor.meta.request_id.as_deref())
    .bind(entry.details)
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit row as the api shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, sqlx::FromRow, async_graphql::SimpleObject)]
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
pub async fn list(conn: &mut PgConnection, q: &AuditQuery) -> ApiResult<AuditPage> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(crate::error::ApiError::invalid(
            "limit",
            "must be from 1 to 200",
        ));
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| crate::error::ApiError::invalid("cursor", "not a cursor this api gave"))?;
    let mut items: Vec<AuditRow> = sqlx::query_as(
        "SELECT id, actor_user_id, action, target_type, target_id, host(ip) AS ip, user_agent,
                request_id, details, created_at
           FROM audit_log
          WHERE ($1::text IS NULL OR action = $1)
            AND ($2::uuid IS NULL OR actor_user_id = $2)
            AND ($3::text IS NULL OR target_type = $3)
            AND ($4::uuid IS NULL OR id < $4)
          ORDER BY id DESC LIMIT $5",
    )
    .bind(&q.action)
    .bind(q.actor)
    .bind(&q.target_type)
    .bind(cursor)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(AuditPage { items, next_cursor })
}
