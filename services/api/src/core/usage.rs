//! Usage aggregates over a time range, grouped by day (in the tenant's time zone), model, API
//! key or workspace, read from the ledger's rows through row-level security.

use chrono::{DateTime, Duration, Utc};
use sb_db::TenantTx;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};

#[derive(
    Clone, Copy, Debug, Default, Deserialize, ToSchema, PartialEq, Eq, async_graphql::Enum,
)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    #[default]
    Day,
    Model,
    ApiKey,
    Workspace,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start of the range (inclusive); 30 days ago if absent.
    pub from: Option<DateTime<Utc>>,
    /// End of the range (exclusive); now if absent.
    pub to: Option<DateTime<Utc>>,
    /// `day` (default), `model`, `api_key` or `workspace`.
    pub group_by: Option<GroupBy>,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow, async_graphql::SimpleObject)]
pub struct UsageRow {
    /// The day (`YYYY-MM-DD`), model, key id or workspace id; empty for calls without one.
    pub key: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[schema(value_type = String)]
    pub group_by: &'static str,
    pub rows: Vec<UsageRow>,
}

pub async fn aggregate(tx: &mut TenantTx, q: &UsageQuery) -> ApiResult<UsageReport> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::invalid("from", "must be before `to`"));
    }
    if to - from > Duration::days(400) {
        return Err(ApiError::invalid(
            "from",
            "the range may span at most 400 days",
        ));
    }
    let group_by = q.group_by.unwrap_or_default();
    let (name, key) = match group_by {
        GroupBy::Day => (
            "day",
            "to_char((u.occurred_at AT TIME ZONE t.time_zone)::date, 'YYYY-MM-DD')",
        ),
        GroupBy::Model => ("model", "u.model"),
        GroupBy::ApiKey => ("api_key", "coalesce(u.api_key_id::text, '')"),
        GroupBy::Workspace => ("workspace", "coalesce(u.workspace_id::text, '')"),
    };
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {key} AS key, count(*) AS requests,
                coalesce(sum(u.input_tokens), 0)::bigint AS input_tokens,
                coalesce(sum(u.cached_input_tokens), 0)::bigint AS cached_input_tokens,
                coalesce(sum(u.output_tokens), 0)::bigint AS output_tokens,
                coalesce(sum(u.cost_micros), 0)::bigint AS cost_micros
           FROM usage_ledger u JOIN tenants t ON t.id = u.tenant_id
          WHERE u.occurred_at >= $1 AND u.occurred_at < $2
          GROUP BY 1 ORDER BY 1"
    )))
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?;
    Ok(UsageReport {
        from,
        to,
        group_by: name,
        rows,
    })
}

/// The report as CSV (RFC 4180), one line per row after a header.
pub fn to_csv(report: &UsageReport) -> String {
    let mut out = format!(
        "{},requests,input_tokens,cached_input_tokens,output_tokens,cost_micros\r\n",
        report.group_by
    );
    for r in &report.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{}\r\n",
            csv_field(&r.key),
            r.requests,
            r.input_tokens,
            r.cached_input_tokens,
            r.output_tokens,
            r.cost_micros
        ));
    }
    out
}

fn csv_field(value: &str) -> String {
    // A leading =, +, - or @ would be a formula to a spreadsheet: quote it as text.
    let formula = value.starts_with(['=', '+', '-', '@']);
    if formula || value.contains([',', '"', '\r', '\n']) {
        let prefix = if formula { "'" } else { "" };
        format!("\"{prefix}{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }
}
