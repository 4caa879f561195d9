//! The reconciler: compares every budget's Redis mirror with the rollups in Postgres (the
//! truth) for the budget's current period, reports the difference as `budget_drift_micros`,
//! and rewrites counters that are wrong or missing. Open reservations are the gateway's and
//! are kept apart from the mirror, so they never count as drift.

use redis::aio::ConnectionManager;
use sb_budget::{holds_key, mirror_key};
use sb_db::SystemPool;
use sb_kernel::Micros;

use crate::core::mirror;
use crate::core::record::BudgetSpend;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What one pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub budgets: usize,
    /// Sum of |Redis − Postgres| over the budgets whose counter was wrong or missing.
    pub drift: Micros,
    pub corrected: usize,
    /// Held by the gateways' open reservations (and by settled calls not yet counted), over
    /// all budgets: spend in flight, not drift.
    pub reserved: Micros,
}

/// One pass over every budget.
pub async fn reconcile(
    db: &SystemPool,
    redis: &mut ConnectionManager,
    prefix: &str,
) -> Result<Reconciliation, ReconcileError> {
    let rows = sqlx::query!(
        r#"SELECT b.id, cur.period_start AS "period_start!", coalesce(r.spent_micros, 0) AS "spent!",
                  coalesce(r.revision, 0) AS "revision!"
           FROM budgets b
           JOIN tenants t ON t.id = b.tenant_id
          CROSS JOIN LATERAL (SELECT CASE b.period
                                  WHEN 'daily' THEN (now() AT TIME ZONE t.time_zone)::date
                                  WHEN 'monthly' THEN date_trunc('month', now() AT TIME ZONE t.time_zone)::date
                                  ELSE DATE '1970-01-01' END AS period_start) cur
           LEFT JOIN spend_rollups r
                  ON r.tenant_id = b.tenant_id AND r.scope = b.scope AND r.scope_id = coalesce(b.scope_id, b.tenant_id)
                 AND r.granularity = CASE b.period WHEN 'daily' THEN 'day' WHEN 'monthly' THEN 'month' ELSE 'total' END
                 AND r.period_start = cur.period_start"#,
    )
    .fetch_all(db.pool())
    .await?
    .into_iter()
    .map(|r| (r.id, r.period_start, r.spent, r.revision))
    .collect::<Vec<_>>();
    let mut report = Reconciliation {
        budgets: rows.len(),
        ..Reconciliation::default()
    };
    let mut wrong = Vec::new();
    for chunk in rows.chunks(500) {
        let mut pipe = redis::pipe();
        for (budget_id, ..) in chunk {
            pipe.cmd("HMGET")
                .arg(mirror_key(prefix, *budget_id))
                .arg("period")
                .arg("spent");
            pipe.cmd("HGET")
                .arg(holds_key(prefix, *budget_id))
                .arg("total");
        }
        let replies: Vec<redis::Value> = pipe.query_async(redis).await?;
        let mut stored = Vec::with_capacity(chunk.len());
        for pair in replies.chunks(2) {
            let mirror: (Option<String>, Option<i64>) = match pair.first() {
                Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                None => (None, None),
            };
            let held: Option<i64> = match pair.get(1) {
                Some(v) => redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                None => None,
            };
            report.reserved += Micros(held.unwrap_or(0).max(0));
            stored.push(mirror);
        }
        for ((budget_id, period_start, spent, revision), (period, mirrored)) in
            chunk.iter().zip(stored)
        {
            let same_period =
                period.as_deref() == Some(period_start.format("%Y-%m-%d").to_string().as_str());
            let mirrored = if same_period { mirrored } else { None };
            if mirrored != Some(*spent) {
                report.drift += Micros(
                    mirrored
                        .unwrap_or(0)
                        .abs_diff(*spent)
                        .try_into()
                        .unwrap_or(i64::MAX),
                );
                wrong.push(BudgetSpend {
                    budget_id: *budget_id,
                    period_start: *period_start,
                    spent: Micros(*spent),
                    revision: *revision,
                });
            }
        }
    }
    // The revision guard keeps a batch mirrored since our read from being undone.
    report.corrected = mirror::write(redis, prefix, &wrong)
        .await?
        .iter()
        .filter(|m| m.written)
        .count();
    Ok(report)
}
