//! `/api/v1/tenants/{tenant_id}/budgets`.

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::audit::Entry;
use crate::core::budgets::{self, BudgetUpdate, BudgetView, NewBudget};
use crate::core::invalidation::Stale;
use crate::error::{ApiResult, Problem};
use crate::extract::{Admin, Id, Json, Tenant};
use crate::state::ApiState;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

/// Budgets with the current period's spend and when the period ends.
#[utoipa::path(get, path = "/budgets", tag = "budgets",
    responses((status = 200, body = Vec<BudgetView>)))]
async fn list(mut t: Tenant) -> ApiResult<axum::Json<Vec<BudgetView>>> {
    Ok(axum::Json(budgets::list(&mut t.tx).await?))
}

#[utoipa::path(post, path = "/budgets", tag = "budgets", request_body = NewBudget,
    responses((status = 201, body = BudgetView),
              (status = 409, description = "`budget_exists`", body = Problem)))]
async fn create(
    mut t: Tenant<Admin>,
    Json(req): Json<NewBudget>,
) -> ApiResult<(StatusCode, axum::Json<BudgetView>)> {
    let view = budgets::create(&mut t.tx, &req).await?;
    t.finish_and_invalidate(
        Entry::new("budget.create", "budget", view.id).details(&view),
        Stale::Tenant,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(get, path = "/budgets/{id}", tag = "budgets",
    responses((status = 200, body = BudgetView)))]
async fn get(mut t: Tenant, Id(id): Id) -> ApiResult<axum::Json<BudgetView>> {
    Ok(axum::Json(budgets::get(&mut t.tx, id).await?))
}

/// Changes the limit, thresholds or action; the gateways enforce the change at once.
#[utoipa::path(patch, path = "/budgets/{id}", tag = "budgets", request_body = BudgetUpdate,
    responses((status = 200, body = BudgetView)))]
async fn update(
    mut t: Tenant<Admin>,
    Id(id): Id,
    Json(req): Json<BudgetUpdate>,
) -> ApiResult<axum::Json<BudgetView>> {
    let view = budgets::update(&mut t.tx, id, &req).await?;
    t.finish_and_invalidate(
        Entry::new("budget.update", "budget", id).details(&view),
        Stale::Tenant,
    )
    .await?;
    Ok(axum::Json(view))
}

#[utoipa::path(delete, path = "/budgets/{id}", tag = "budgets",
    responses((status = 204, description = "Deleted")))]
async fn delete(mut t: Tenant<Admin>, Id(id): Id) -> ApiResult<StatusCode> {
    let view = budgets::delete(&mut t.tx, id).await?;
    t.finish_and_invalidate(
        Entry::new("budget.delete", "budget", id).details(&view),
        Stale::Tenant,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
