//! The api's routes. Every REST route is registered through `routes!` on an `OpenApiRouter`,
//! so it cannot exist without its OpenAPI description; each resource has its own module.

mod admin;
mod agents;
mod api_keys;
mod approvals;
mod auth;
mod budgets;
mod credentials;
pub mod docs;
mod invitations;
mod me;
mod members;
mod prices;
mod run_events;
mod runs;
mod tenant;
mod usage_events;
mod usage_summary;
mod webhooks;
mod workspaces;

use axum::Router;
use sb_runtime::Infra;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;

use crate::SERVICE;
use crate::state::ApiState;

/// The REST routes and their generated OpenAPI document.
pub fn rest() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    let tenant = OpenApiRouter::new()
        .merge(workspaces::router())
        .merge(members::router())
        .merge(invitations::router())
        .merge(api_keys::router())
        .merge(credentials::router())
        .merge(budgets::router())
        .merge(agents::router())
        .merge(runs::router())
        .merge(run_events::router())
        .merge(approvals::router())
        .merge(webhooks::router())
        .merge(tenant::router())
        .merge(usage_summary::router())
        .merge(usage_events::router());
    OpenApiRouter::new()
        .nest("/api/v1/auth", auth::router())
        .merge(me::router())
        .merge(invitations::root())
        .merge(tenant::root())
        .nest("/api/v1/tenants/{tenant_id}", tenant)
        .nest("/api/v1/admin", admin::router().merge(prices::router()))
        .split_for_parts()
}

/// The whole api: REST, its document and docs page, GraphQL, health and metrics.
pub fn router(infra: &Infra, state: ApiState) -> (Router, Value) {
    let (rest, api) = rest();
    let doc = docs::complete(api);
    let router = rest
        .merge(docs::swagger(doc.clone()))
        .merge(crate::graphql::router(&state))
        .with_state(state)
        .merge(sb_runtime::health::router(SERVICE, infra));
    (router, doc)
}
