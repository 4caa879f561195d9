//! The dashboard's overview figures over a range: requests, failures, spend and p95 latency,
//! read from the ledger's rows through row-level security. The range is given as instants (the
//! dashboard sends midnight to midnight in the tenant's time zone for "today").

use chrono::{DateTime, Duration, Utc};
use sb_db::TenantTx;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Start of the range (inclusive); 24 hours before `to` if absent.
    pub from: Option<DateTime<Utc>>,
    /// End of the range (exclusive); now if absent.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct UsageSummary {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every call the gateway metered, refused ones included.
    pub requests: i64,
    /// Calls that failed upstream or were cut off (`upstream_error`, `interrupted`).
    pub errors: i64,
    /// Calls the gateway refused before any provider (rate limit, budget, outage).
    pub refused: i64,
    pub cost_micros: i64,
    /// The 95th percentile of the latency of calls that reached a provider; none without any.
    pub p95_latency_ms: Option<i32>,
}

pub async fn summary(tx: &mut TenantTx, q: &SummaryQuery) -> ApiResult<UsageSummary> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(1));
    if from >= to {
        return Err(ApiError::invalid("from", "must be before `to`"));
    }
    if to - from > Duration::days(400) {
        return Err(ApiError::invalid(
            "from",
            "the range may span at most 400 days",
        ));
    }
    let row = sqlx::query!(
        r#"SELECT count(*) AS "requests!",
                  count(*) FILTER (WHERE status IN ('upstream_error', 'interrupted')) AS "errors!",
                  count(*) FILTER (WHERE status = 'refused') AS "refused!",
                  coalesce(sum(cost_micros), 0)::bigint AS "cost_micros!",
                  percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms)
                      FILTER (WHERE status <> 'refused') AS p95_latency_ms
             FROM usage_ledger
            WHERE occurred_at >= $1 AND occurred_at < $2"#,
        from,
        to
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(UsageSummary {
        from,
        to,
        requests: row.requests,
        errors: row.errors,
        refused: row.refused,
        cost_micros: row.cost_micros,
        p95_latency_ms: row.p95_latency_ms,
    })
}
