//! `/api/v1/tenants/{tenant_id}/usage/summary`: the overview's figures.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::usage_summary::{self, SummaryQuery, UsageSummary};
use crate::error::{ApiResult, Problem};
use crate::extract::{Member, Query, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_summary))
}

/// Requests, failures, refusals, spend and p95 latency over a range (by default the last 24
/// hours).
#[utoipa::path(get, path = "/usage/summary", tag = "usage", params(SummaryQuery),
    responses((status = 200, body = UsageSummary),
              (status = 422, description = "The range is empty or longer than 400 days", body = Problem)))]
async fn get_summary(
    mut t: Tenant<Member>,
    Query(q): Query<SummaryQuery>,
) -> ApiResult<axum::Json<UsageSummary>> {
    Ok(axum::Json(usage_summary::summary(&mut t.tx, &q).await?))
}
