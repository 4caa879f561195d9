//! `/api/v1/tenants/{tenant_id}/usage/events`: the ledger's rows, and the explanation of any
//! one charge.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::usage_events::{self, EventsQuery, Explanation, UsageEventPage};
use crate::error::{ApiResult, Problem};
use crate::extract::{Id, Member, Query, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(explain_event))
}

/// The tenant's calls in a range (by default the last 30 days), newest first, paged by
/// cursor and filtered by model, key or workspace.
#[utoipa::path(get, path = "/usage/events", tag = "usage", params(EventsQuery),
    responses((status = 200, body = UsageEventPage),
              (status = 422, description = "A bad range, limit or cursor", body = Problem)))]
async fn list_events(
    mut t: Tenant<Member>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<axum::Json<UsageEventPage>> {
    Ok(axum::Json(usage_events::list(&mut t.tx, &q).await?))
}

/// Explain this charge: the request id, every provider entry tried, the price-book entry in
/// force and the arithmetic, the hold at admission and what it settled to, and the budgets it
/// counted against.
#[utoipa::path(get, path = "/usage/events/{event_id}", tag = "usage",
    params(("event_id" = uuid::Uuid, Path)),
    responses((status = 200, body = Explanation),
              (status = 404, description = "The tenant has no such call", body = Problem)))]
async fn explain_event(
    mut t: Tenant<Member>,
    Id(event_id): Id,
) -> ApiResult<axum::Json<Explanation>> {
    Ok(axum::Json(
        usage_events::explain(&mut t.tx, event_id).await?,
    ))
}
