//! Budgets: a limit on spend for a scope (the tenant, a workspace, a key or an agent run) over a
//! period (daily and monthly in the tenant's time zone, or in total). Responses carry the
//! current period's spend from the ledger's rollups and when the period ends. Every change
//! publishes a tenant invalidation so gateways enforce the new limit at once.

use chrono::{DateTime, NaiveDate, Utc};
use sb_config::BudgetDefaults;
use sb_db::TenantTx;
use sb_kernel::{BudgetPeriod, BudgetScope, Micros};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult, OnConstraint};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct BudgetView {
    pub id: Uuid,
    /// `tenant`, `workspace`, `api_key` or `agent_run`.
    pub scope: String,
    /// The workspace, key or run; none for the tenant scope.
    pub scope_id: Option<Uuid>,
    /// `daily`, `monthly` or `total`.
    pub period: String,
    pub limit_micros: i64,
    /// Percentages of the limit at which an alert goes out.
    pub thresholds: Vec<i16>,
    /// `block` refuses calls past the limit; `alert` only warns.
    pub action: String,
    /// Spend in the current period, in micro-dollars, as the ledger has recorded it.
    pub spent_micros: i64,
    /// The current period's first day in the tenant's time zone; none for `total`.
    pub period_start: Option<NaiveDate>,
    /// When the current period ends; none for `total`.
    pub period_end: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// `scope` and `period` stay text here, so that an unknown one is reported with the other
// fields' problems (in one 422) instead of failing the body's decoding; `create` parses them
// into `BudgetScope` and `BudgetPeriod`. (A plain comment: a doc comment would change the
// OpenAPI document.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    pub scope: String,
    pub scope_id: Option<Uuid>,
    pub period: String,
    pub limit_micros: i64,
    pub thresholds: Option<Vec<i16>>,
    pub action: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetUpdate {
    pub limit_micros: Option<i64>,
    pub thresholds: Option<Vec<i16>>,
    pub action: Option<String>,
}

/// Budgets with their period and spend, computed in SQL in the tenant's time zone. The spend is
/// the ledger's rollup for the budget's scope and current period (`total` budgets read the
/// whole-life rollup, whose period starts 1970-01-01). The `CASE` on `b.period` spells out
/// `BudgetPeriod::granularity` in SQL. `list` and `get` differ only in their last line (a macro
/// needs the whole query as one literal).
pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<BudgetView>> {
    Ok(sqlx::query_as!(
        BudgetView,
        r#"SELECT b.id, b.scope, b.scope_id, b.period, b.limit_micros, b.thresholds, b.action,
                  b.created_at, b.updated_at,
                  CASE WHEN b.period = 'total' THEN NULL ELSE p.period_start END AS period_start,
                  p.period_end,
                  coalesce((SELECT r.spent_micros FROM spend_rollups r
                             WHERE r.tenant_id = b.tenant_id AND r.scope = b.scope
                               AND r.scope_id = coalesce(b.scope_id, b.tenant_id)
                               AND r.granularity = CASE b.period WHEN 'daily' THEN 'day'
                                                                 WHEN 'monthly' THEN 'month' ELSE 'total' END
                               AND r.period_start = p.period_start), 0)::bigint
                    AS "spent_micros!"
             FROM budgets b
             JOIN tenants t ON t.id = b.tenant_id
            CROSS JOIN LATERAL budget_period(b.period, t.time_zone) p
            ORDER BY b.scope, b.period, b.id"#
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> ApiResult<BudgetView> {
    sqlx::query_as!(
        BudgetView,
        r#"SELECT b.id, b.scope, b.scope_id, b.period, b.limit_micros, b.thresholds, b.action,
                  b.created_at, b.updated_at,
                  CASE WHEN b.period = 'total' THEN NULL ELSE p.period_start END AS period_start,
                  p.period_end,
                  coalesce((SELECT r.spent_micros FROM spend_rollups r
                             WHERE r.tenant_id = b.tenant_id AND r.scope = b.scope
                               AND r.scope_id = coalesce(b.scope_id, b.tenant_id)
                               AND r.granularity = CASE b.period WHEN 'daily' THEN 'day'
                                                                 WHEN 'monthly' THEN 'month' ELSE 'total' END
                               AND r.period_start = p.period_start), 0)::bigint
                    AS "spent_micros!"
             FROM budgets b
             JOIN tenants t ON t.id = b.tenant_id
            CROSS JOIN LATERAL budget_period(b.period, t.time_zone) p
            WHERE b.id = $1"#,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("budget"))
}

fn check_common(
    checks: &mut Checks,
    limit: Option<i64>,
    thresholds: Option<&[i16]>,
    action: Option<&str>,
) {
    checks.check(
        limit.is_none_or(|l| l >= 0),
        "limit_micros",
        "must be zero or more micro-dollars",
    );
    if let Some(t) = thresholds {
        checks.check(
            t.len() <= 10 && t.iter().all(|p| (1..=1000).contains(p)),
            "thresholds",
            "at most 10 percentages, each from 1 to 1000",
        );
    }
    checks.check(
        action.is_none_or(|a| a == "block" || a == "alert"),
        "action",
        "must be block or alert",
    );
}

/// The scope's table, where a `scope_id` must name a row of this tenant.
fn scope_table(scope: BudgetScope) -> Option<&'static str> {
    match scope {
        BudgetScope::Tenant => None,
        BudgetScope::Workspace => Some("workspaces"),
        BudgetScope::ApiKey => Some("api_keys"),
        BudgetScope::AgentRun => Some("agent_runs"),
    }
}

/// The budgets a new tenant starts with: `DEFAULT_BUDGET_USD` for each period of
/// `BUDGET_PERIODS` (none when it is 0), for the whole tenant, blocking at the limit. One that
/// exists already is left as it is (the demo seed runs again).
pub async fn create_defaults(tx: &mut TenantTx, defaults: &BudgetDefaults) -> ApiResult<()> {
    if defaults.default_budget_usd <= 0 || defaults.periods.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = defaults.periods.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query!(
        "INSERT INTO budgets (id, tenant_id, scope, scope_id, period, limit_micros)
         SELECT x.id, $2, 'tenant', NULL, x.period, $4
           FROM UNNEST($1::uuid[], $3::text[]) AS x(id, period)
         ON CONFLICT (tenant_id, scope, scope_id, period) DO NOTHING",
        &ids,
        tx.tenant().as_uuid(),
        &defaults.periods,
        Micros::from_dollars(defaults.default_budget_usd).0,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn create(tx: &mut TenantTx, req: &NewBudget) -> ApiResult<BudgetView> {
    let scope: Option<BudgetScope> = req.scope.parse().ok();
    let period: Option<BudgetPeriod> = req.period.parse().ok();
    let mut checks = Checks::new();
    checks
        .check(
            scope.is_some(),
            "scope",
            "must be tenant, workspace, api_key or agent_run",
        )
        .check(
            period.is_some(),
            "period",
            "must be daily, monthly or total",
        )
        .check(
            scope.is_some_and(|s| !s.has_scope_id()) == req.scope_id.is_none(),
            "scope_id",
            "required for workspace, api_key and agent_run scopes; absent for the tenant scope",
        );
    check_common(
        &mut checks,
        Some(req.limit_micros),
        req.thresholds.as_deref(),
        req.action.as_deref(),
    );
    checks.finish()?;
    let (Some(scope), Some(period)) = (scope, period) else {
        // `finish` has refused the request unless both parsed.
        return Err(ApiError::internal(
            "budget checks passed an unknown scope or period",
        ));
    };
    if let (Some(table), Some(scope_id)) = (scope_table(scope), req.scope_id) {
        let found: Option<(Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {table} WHERE id = $1"
        )))
        .bind(scope_id)
        .fetch_optional(&mut **tx)
        .await?;
        if found.is_none() {
            return Err(ApiError::invalid(
                "scope_id",
                format!("no such {scope} in this tenant"),
            ));
        }
    }
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO budgets (id, tenant_id, scope, scope_id, period, limit_micros, thresholds, action)
         VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, '{50,80,100}'::smallint[]), coalesce($8, 'block'))",
        id,
        tx.tenant().as_uuid(),
        scope.as_str(),
        req.scope_id,
        period.as_str(),
        req.limit_micros,
        req.thresholds.as_deref(),
        req.action.as_deref(),
    )
    .execute(&mut **tx)
    .await
    .on_unique(|| {
        ApiError::conflict(
            "budget_exists",
            "this scope already has a budget for this period; update it instead",
        )
    })?;
    get(tx, id).await
}

pub async fn update(tx: &mut TenantTx, id: Uuid, req: &BudgetUpdate) -> ApiResult<BudgetView> {
    let mut checks = Checks::new();
    check_common(
        &mut checks,
        req.limit_micros,
        req.thresholds.as_deref(),
        req.action.as_deref(),
    );
    checks.finish()?;
    let done = sqlx::query!(
        "UPDATE budgets SET limit_micros = coalesce($2, limit_micros),
                            thresholds = coalesce($3, thresholds),
                            action = coalesce($4, action), updated_at = now()
          WHERE id = $1",
        id,
        req.limit_micros,
        req.thresholds.as_deref(),
        req.action.as_deref(),
    )
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("budget"));
    }
    get(tx, id).await
}

pub async fn delete(tx: &mut TenantTx, id: Uuid) -> ApiResult<BudgetView> {
    let view = get(tx, id).await?;
    sqlx::query!("DELETE FROM budgets WHERE id = $1", id)
        .execute(&mut **tx)
        .await?;
    Ok(view)
}
