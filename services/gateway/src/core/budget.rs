//! Budgets as a call meets them: which of the tenant's budgets apply to a call (the tenant's,
//! its key's workspace's, its key's, its agent run's: [`Budget::applies`]) and what the call
//! holds against each before it goes (its estimated cost: [`Estimate`], [`holds`]).
//!
//! The hold itself is taken in the same Redis round trip as the rate limits
//! ([`crate::core::policy`]) and settled to the real cost when the call is metered
//! ([`crate::core::meter`]). Also here: a budget as the gateway caches it with its tenant (its
//! names in Redis and its current period, [`load`]), and the rebuild of a spend mirror missing
//! from Redis from the ledger's rollups ([`rebuild_mirrors`]; the mirror's own helpers are in
//! `sb_budget`).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use redis::aio::ConnectionManager;
use sb_budget::{BudgetSpend, holds_key, leases_key, mirror_key, write_mirror};
use sb_db::{AppPool, TenantTx};
use sb_kernel::{BudgetPeriod, BudgetScope, Micros, RunId, TenantId};
use serde_json::Value;
use uuid::Uuid;

use crate::core::keys::KeyInfo;
use crate::core::{Gateway, StoreError, estimate, meter};

/// A budget as the policy decision needs it.
#[derive(Debug, Clone)]
pub struct Budget {
    pub id: Uuid,
    pub scope: BudgetScope,
    /// The scoped workspace, key or run; None for the tenant scope.
    pub scope_id: Option<Uuid>,
    pub period: BudgetPeriod,
    pub limit: Micros,
    /// `block` refuses over the limit; `alert` only tells.
    pub blocks: bool,
    /// The current period's first day in the tenant's zone (the mirror's `period`).
    pub period_start: NaiveDate,
    /// When the current period ends; the cached state is reloaded then.
    pub period_end: Option<DateTime<Utc>>,
    /// Its names in Redis, made once per load rather than on every call.
    pub keys: Arc<BudgetKeys>,
}

/// A budget's keys in Redis and its current period as the mirror writes it (`YYYY-MM-DD`).
#[derive(Debug)]
pub struct BudgetKeys {
    pub mirror: String,
    pub holds: String,
    pub leases: String,
    pub period: String,
}

impl Budget {
    /// Whether a call made with `key` (for agent run `run`) counts against this budget.
    pub fn applies(&self, key: &KeyInfo, run: Option<RunId>) -> bool {
        let names = |id: Option<Uuid>| self.scope_id.is_some() && self.scope_id == id;
        match self.scope {
            BudgetScope::Tenant => true,
            BudgetScope::Workspace => names(key.workspace_id.map(|w| w.as_uuid())),
            BudgetScope::ApiKey => names(Some(key.id.as_uuid())),
            BudgetScope::AgentRun => names(run.map(|r| r.as_uuid())),
        }
    }
}

/// What a call is expected to need, sized before it goes; the charge is always what the
/// provider reports (or, for a cut stream, what was sent).
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    /// The prompt's tokens: also what a cut stream is charged for its input when the provider
    /// never said.
    pub prompt_tokens: u64,
    /// The prompt and the most output the call allows, for the tokens-per-minute limit.
    pub tokens: u64,
    /// Those tokens at the price of the entry the call goes to first (nothing when the price
    /// book has no price): what it holds against each budget that applies.
    pub cost: Micros,
}

impl Estimate {
    pub async fn of(gw: &Gateway, provider: &str, model: &str, body: &Value) -> Self {
        let prompt = estimate::prompt_tokens(body);
        let output = estimate::max_output_tokens(body);
        let price = meter::price(gw, provider, model).await;
        Self {
            prompt_tokens: prompt,
            tokens: prompt.saturating_add(output),
            cost: price.map_or(Micros(0), |p| p.cost(prompt, 0, output)),
        }
    }
}

/// The budgets a call made with `key` (for `run`) must fit in, each with what the call holds
/// against it.
pub fn holds<'a>(
    budgets: &'a [Budget],
    key: &KeyInfo,
    run: Option<RunId>,
    cost: Micros,
) -> Vec<(&'a Budget, Micros)> {
    budgets
        .iter()
        .filter(|b| b.applies(key, run))
        .map(|b| (b, cost))
        .collect()
}

struct BudgetRow {
    id: Uuid,
    scope: BudgetScope,
    scope_id: Option<Uuid>,
    period: BudgetPeriod,
    limit_micros: i64,
    action: String,
    period_start: NaiveDate,
    period_end: Option<DateTime<Utc>>,
}

/// The tenant's budgets with their current periods (calendar periods in the tenant's time
/// zone), read in the tenant's transaction; `prefix` is the Redis key prefix.
pub async fn load(tx: &mut TenantTx, prefix: &str) -> Result<Vec<Budget>, sqlx::Error> {
    let rows = sqlx::query_as!(
        BudgetRow,
        r#"SELECT b.id, b.scope AS "scope: BudgetScope", b.scope_id, b.period AS "period: BudgetPeriod",
                  b.limit_micros, b.action, p.period_start AS "period_start!", p.period_end
             FROM budgets b
             JOIN tenants t ON t.id = b.tenant_id
            CROSS JOIN LATERAL budget_period(b.period, t.time_zone) p"#
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|b| Budget {
            keys: Arc::new(BudgetKeys {
                mirror: mirror_key(prefix, b.id),
                holds: holds_key(prefix, b.id),
                leases: leases_key(prefix, b.id),
                period: b.period_start.to_string(),
            }),
            id: b.id,
            scope: b.scope,
            scope_id: b.scope_id,
            period: b.period,
            limit: Micros(b.limit_micros),
            blocks: b.action == "block",
            period_start: b.period_start,
            period_end: b.period_end,
        })
        .collect())
}

/// Writes the mirror of each budget from its rollup (zero when nothing was spent yet), with
/// the rollup's revision, so a concurrent ledger write is never overwritten.
pub async fn rebuild_mirrors(
    db: &AppPool,
    redis: &ConnectionManager,
    prefix: &str,
    tenant: TenantId,
    budgets: &[&Budget],
) -> Result<(), StoreError> {
    let mut tx = db.begin(tenant).await?;
    let mut spends = Vec::with_capacity(budgets.len());
    for budget in budgets {
        let row = sqlx::query!(
            "SELECT spent_micros, revision FROM spend_rollups
              WHERE scope = $1 AND scope_id = $2 AND granularity = $3 AND period_start = $4",
            budget.scope.as_str(),
            budget.scope_id.unwrap_or(tenant.as_uuid()),
            budget.period.granularity(),
            budget.period_start,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (spent, revision) = row.map_or((0, 0), |r| (r.spent_micros, r.revision));
        spends.push(BudgetSpend {
            budget_id: budget.id,
            period_start: budget.period_start,
            spent: Micros(spent),
            revision,
        });
    }
    tx.commit().await?;
    if let Err(e) = write_mirror(&mut redis.clone(), prefix, &spends).await {
        tracing::warn!(error = %e, "could not rebuild budget mirrors");
    }
    metrics::counter!("gateway_budget_rebuilds_total").increment(spends.len() as u64);
    Ok(())
}
