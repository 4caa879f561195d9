//! `/api/v1/tenants/{tenant_id}/approvals`: what agents wait for, and the decisions.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sb_agents::approvals::ApprovalView;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::audit::Entry;
use crate::core::invalidation::Stale;
use crate::core::runs::{self, ApprovalPage, ApprovalsQuery, DecisionInput};
use crate::error::ApiResult;
use crate::extract::{Id, Json, Member, Query, Tenant};
use crate::state::ApiState;
use sb_kernel::ApprovalKind;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(decide))
}

/// Approvals, newest first, a page at a time.
#[utoipa::path(get, path = "/approvals", tag = "approvals", params(ApprovalsQuery),
    responses((status = 200, body = ApprovalPage)))]
async fn list(
    mut t: Tenant,
    Query(q): Query<ApprovalsQuery>,
) -> ApiResult<axum::Json<ApprovalPage>> {
    Ok(axum::Json(runs::approvals(&mut t.tx, &q).await?))
}

/// One approval: the exact tool call and arguments it would execute, the run, who started
/// it, and when it expires.
#[utoipa::path(get, path = "/approvals/{id}", tag = "approvals",
    responses((status = 200, body = ApprovalView)))]
async fn get(mut t: Tenant, Id(id): Id) -> ApiResult<axum::Json<ApprovalView>> {
    Ok(axum::Json(runs::approval(&mut t.tx, id).await?))
}

/// The answer to a decision taken after another (409).
#[derive(Serialize, ToSchema)]
pub struct AlreadyDecided {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    /// `already_decided`.
    code: &'static str,
    detail: String,
    /// The approval as the first decision (or its expiry) left it.
    approval: ApprovalView,
}

/// Decides: the first decision wins (200); every later or concurrent one gets 409 with the
/// decision that won.
#[utoipa::path(post, path = "/approvals/{id}/decision", tag = "approvals", request_body = DecisionInput,
    responses((status = 200, body = ApprovalView), (status = 409, body = AlreadyDecided)))]
async fn decide(
    mut t: Tenant<Member>,
    Id(id): Id,
    Json(input): Json<DecisionInput>,
) -> ApiResult<Response> {
    let decision = input.decision.clone();
    match runs::decide(&mut t.tx, id, input, t.access.user).await {
        Ok(approval) => {
            let entry = Entry::new("approval.decide", "approval", id)
                .details(serde_json::json!({"decision": decision, "run_id": approval.run_id}));
            if approval.kind == ApprovalKind::Budget {
                // The run's budget changed: the gateways must enforce the new one.
                t.finish_and_invalidate(entry, Stale::Tenant).await?;
            } else {
                t.finish(entry).await?;
            }
            Ok(axum::Json(approval).into_response())
        }
        Err(Ok(current)) => {
            let detail = format!("this approval is already {}", current.status);
            let body = AlreadyDecided {
                kind: "about:blank",
                title: "Conflict",
                status: 409,
                code: "already_decided",
                detail,
                approval: current,
            };
            let mut response = (StatusCode::CONFLICT, axum::Json(body)).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            Ok(response)
        }
        Err(Err(e)) => Err(e),
    }
}
