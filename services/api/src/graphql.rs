//! GraphQL at `/graphql`, for the dashboard and power users: the reads the dashboard needs, each
//! resolved through the same `core` functions and the same role check (`core::access`) as REST.
//! A user gets `NOT_FOUND` for a tenant they are not a member of, exactly as REST answers 404.
//! Depth and complexity are limited; introspection can be switched off
//! (`GRAPHQL_INTROSPECTION=false`). There is no bundled playground: the common ones load their
//! JavaScript from a CDN, which this platform avoids; any GraphQL client works against `/graphql`.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, EmptyMutation, EmptySubscription, ErrorExtensions, Object, Schema};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{Role, TenantId, UserId};
use uuid::Uuid;

use crate::core::accounts::UserView;
use crate::core::agents::AgentView;
use crate::core::api_keys::ApiKeyView;
use crate::core::audit::{AuditQuery, AuditRow};
use crate::core::budgets::BudgetView;
use crate::core::credentials::CredentialView;
use crate::core::me::MembershipView;
use crate::core::members::MemberView;
use crate::core::runs::{ApprovalsQuery, RunsQuery};
use crate::core::tenants::TenantView;
use crate::core::usage::{GroupBy, UsageQuery, UsageRow};
use crate::core::workspaces::WorkspaceView;
use crate::core::{
    access, agents, api_keys, audit, budgets, credentials, me, members, runs, tenants, usage,
    workspaces,
};
use crate::error::ApiError;
use crate::extract::{Json, Session, authenticate};
use crate::state::ApiState;
use sb_agents::approvals::ApprovalView;
use sb_agents::runs::RunView;
use sb_agents::steps::StepView;
use sb_kernel::{ApprovalStatus, RunId, RunStatus};

pub type ApiSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

pub fn router(state: &ApiState) -> Router<ApiState> {
    let mut builder = Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .limit_depth(state.config.graphql_max_depth)
        .limit_complexity(state.config.graphql_max_complexity)
        .data(state.clone());
    if !state.config.graphql_introspection {
        builder = builder.disable_introspection();
    }
    let schema = builder.finish();
    Router::new().route("/graphql", post(execute).layer(axum::Extension(schema)))
}

/// A GraphQL request is JSON (`{"query", "variables", "operationName"}`) read by the same
/// extractor as every REST body: the same content type check, body limit and errors.
async fn execute(
    State(state): State<ApiState>,
    axum::Extension(schema): axum::Extension<ApiSchema>,
    headers: HeaderMap,
    Json(mut request): Json<async_graphql::Request>,
) -> Result<axum::Json<async_graphql::Response>, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        // A token that is present but not valid is refused outright, as on REST.
        request = request.data(authenticate(&state, token.trim()).await?);
    }
    Ok(axum::Json(schema.execute(request).await))
}

/// An `ApiError` as a GraphQL error with `extensions.code` (`NOT_FOUND`, `FORBIDDEN`, …).
fn gql(e: ApiError) -> async_graphql::Error {
    let code = e.code.to_ascii_uppercase();
    async_graphql::Error::new(e.detail).extend_with(|_, ext| {
        ext.set("code", code.clone());
        ext.set("status", e.status.as_u16());
    })
}

fn session<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Session> {
    ctx.data_opt::<Session>().ok_or_else(|| {
        gql(ApiError::unauthorized(
            "unauthenticated",
            "sign in and send the access token as `Authorization: Bearer <token>`",
        ))
    })
}

fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a ApiState> {
    ctx.data::<ApiState>()
}

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<UserView> {
        let session = session(ctx)?;
        me::user(state(ctx)?, session.user).await.map_err(gql)
    }

    /// The tenants the signed-in user belongs to, with their role.
    async fn memberships(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MembershipView>> {
        let session = session(ctx)?;
        me::memberships(state(ctx)?, session.user)
            .await
            .map_err(gql)
    }

    /// One tenant the user is a member of; `NOT_FOUND` otherwise.
    async fn tenant(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<TenantWithView> {
        let session = session(ctx)?;
        let node = TenantNode {
            id: TenantId::from_uuid(id),
            user: session.user,
        };
        let (mut tx, _) = node.enter(ctx, Role::Viewer).await?;
        let view = tenants::get(&mut tx).await.map_err(gql)?;
        tx.commit().await.map_err(|e| gql(e.into()))?;
        Ok(node.with(view))
    }

    /// The price book, for platform admins (`FORBIDDEN` otherwise): every price by provider
    /// and model, newest first, in micro-dollars per million tokens.
    async fn prices(
        &self,
        ctx: &Context<'_>,
        provider: Option<String>,
        model: Option<String>,
    ) -> async_graphql::Result<Vec<crate::core::prices::PriceView>> {
        let session = session(ctx)?;
        let state = state(ctx)?;
        access::require_platform_admin(state, session.user)
            .await
            .map_err(gql)?;
        let filter = crate::core::prices::PriceFilter { provider, model };
        crate::core::prices::list_all(state, &filter)
            .await
            .map_err(gql)
    }
}

/// A tenant and what the dashboard reads of it. Each field checks the role it needs.
pub struct TenantNode {
    id: TenantId,
    user: UserId,
}

pub struct TenantWithView {
    node: TenantNode,
    view: TenantView,
}

impl TenantNode {
    fn with(self, view: TenantView) -> TenantWithView {
        TenantWithView { node: self, view }
    }

    async fn enter(
        &self,
        ctx: &Context<'_>,
        needed: Role,
    ) -> async_graphql::Result<(TenantTx, access::Access)> {
        access::enter(state(ctx)?, self.user, self.id, needed, false)
            .await
            .map_err(gql)
    }
}

/// Runs `read` in the tenant's context with at least `needed`.
macro_rules! read {
    ($self:ident, $ctx:ident, $needed:expr, |$tx:ident| $body:expr) => {{
        let (mut $tx, _) = $self.node.enter($ctx, $needed).await?;
        let value = $body.await.map_err(gql)?;
        $tx.commit().await.map_err(|e| gql(e.into()))?;
        Ok(value)
    }};
}

#[Object(name = "Tenant")]
impl TenantWithView {
    async fn id(&self) -> Uuid {
        self.view.id
    }

    async fn name(&self) -> &str {
        &self.view.name
    }

    async fn slug(&self) -> &str {
        &self.view.slug
    }

    async fn time_zone(&self) -> &str {
        &self.view.time_zone
    }

    async fn status(&self) -> &str {
        &self.view.status
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.view.created_at
    }

    /// Workspaces by name, as a cursor connection.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn workspaces(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Page<WorkspaceView>> {
        let all: async_graphql::Result<Vec<WorkspaceView>> =
            read!(self, ctx, Role::Viewer, |tx| workspaces::list(&mut tx));
        paginate(all?, first, after, |w| w.id)
    }

    /// Members in the order they joined, as a cursor connection.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Page<MemberView>> {
        let all: async_graphql::Result<Vec<MemberView>> =
            read!(self, ctx, Role::Viewer, |tx| members::list(&mut tx));
        paginate(all?, first, after, |m| m.user_id)
    }

    /// Gateway keys, newest first, as a cursor connection.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Page<ApiKeyView>> {
        let all: async_graphql::Result<Vec<ApiKeyView>> =
            read!(self, ctx, Role::Viewer, |tx| api_keys::list(&mut tx));
        paginate(all?, first, after, |k| k.id)
    }

    async fn provider_credentials(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<CredentialView>> {
        read!(self, ctx, Role::Viewer, |tx| credentials::list(&mut tx))
    }

    /// Budgets with the current period's spend.
    async fn budgets(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<BudgetView>> {
        read!(self, ctx, Role::Viewer, |tx| budgets::list(&mut tx))
    }

    /// Usage totals over a range (30 days to now by default), grouped as asked.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        group_by: Option<GroupBy>,
    ) -> async_graphql::Result<Vec<UsageRow>> {
        let q = UsageQuery { from, to, group_by };
        let report: async_graphql::Result<usage::UsageReport> =
            read!(self, ctx, Role::Member, |tx| usage::aggregate(&mut tx, &q));
        Ok(report?.rows)
    }

    /// Agents by name.
    async fn agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AgentView>> {
        read!(self, ctx, Role::Viewer, |tx| agents::list(&mut tx))
    }

    /// Runs, newest first, as a cursor connection; `status` and `agentId` filter them.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<RunStatus>,
        agent_id: Option<Uuid>,
    ) -> async_graphql::Result<Page<RunView>> {
        let q = RunsQuery {
            status: status.map(|s| s.as_str().to_owned()),
            agent_id,
            cursor: after.clone(),
            limit: Some(i64::from(first.unwrap_or(PAGE))),
            ..RunsQuery::default()
        };
        let page: async_graphql::Result<runs::RunPage> =
            read!(self, ctx, Role::Viewer, |tx| runs::list(&mut tx, &q));
        let page = page?;
        let mut connection = Connection::new(after.is_some(), page.next_cursor.is_some());
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|r| Edge::new(r.id.to_string(), r)),
        );
        Ok(connection)
    }

    /// One run.
    async fn run(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<RunView> {
        read!(self, ctx, Role::Viewer, |tx| runs::get(
            &mut tx,
            RunId::from_uuid(id)
        ))
    }

    /// A run's step log.
    async fn run_steps(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Vec<StepView>> {
        read!(self, ctx, Role::Viewer, |tx| runs::steps(
            &mut tx,
            RunId::from_uuid(id)
        ))
    }

    /// Approvals, newest first, as a cursor connection; `status` filters them.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn approvals(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<ApprovalStatus>,
    ) -> async_graphql::Result<Page<ApprovalView>> {
        let q = ApprovalsQuery {
            status: status.map(|s| s.as_str().to_owned()),
            cursor: after.clone(),
            limit: Some(i64::from(first.unwrap_or(PAGE))),
            ..ApprovalsQuery::default()
        };
        let page: async_graphql::Result<runs::ApprovalPage> =
            read!(self, ctx, Role::Viewer, |tx| runs::approvals(&mut tx, &q));
        let page = page?;
        let mut connection = Connection::new(after.is_some(), page.next_cursor.is_some());
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|a| Edge::new(a.id.to_string(), a)),
        );
        Ok(connection)
    }

    /// The audit log, newest first, as a cursor connection.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        action: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditRow, EmptyFields, EmptyFields>> {
        let q = AuditQuery {
            action,
            cursor: after,
            limit: Some(i64::from(first.unwrap_or(50))),
            ..AuditQuery::default()
        };
        let page: async_graphql::Result<audit::AuditPage> =
            read!(self, ctx, Role::Admin, |tx| audit::list(&mut tx, &q));
        let page = page?;
        let mut connection = Connection::new(q.cursor.is_some(), page.next_cursor.is_some());
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|row| Edge::new(row.id.to_string(), row)),
        );
        Ok(connection)
    }
}

type Page<T> = Connection<String, T, EmptyFields, EmptyFields>;

/// Default and largest page of a connection.
const PAGE: i32 = 50;
const MAX_PAGE: i32 = 200;

/// A page costs its size times what each item asks for, so a query's complexity limit bounds
/// the rows it can pull.
fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    usize::try_from(first.unwrap_or(PAGE).clamp(0, MAX_PAGE)).unwrap_or(0) * child_complexity + 1
}

/// A page of `items` (in their order) after the item whose id is `after`. The cursor is that
/// id, so it stays valid while items are added or removed.
fn paginate<T: async_graphql::OutputType>(
    items: Vec<T>,
    first: Option<i32>,
    after: Option<String>,
    id: impl Fn(&T) -> Uuid,
) -> async_graphql::Result<Page<T>> {
    let first = first.unwrap_or(PAGE);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(gql(ApiError::invalid("first", "must be from 0 to 200")));
    }
    let start = match after.as_deref() {
        None => 0,
        Some(cursor) => {
            let cursor = Uuid::parse_str(cursor)
                .map_err(|_| gql(ApiError::invalid("after", "not a cursor this api gave")))?;
            items
                .iter()
                .position(|item| id(item) == cursor)
                .map(|i| i + 1)
                .ok_or_else(|| {
                    gql(ApiError::invalid(
                        "after",
                        "no such item: it may have been removed",
                    ))
                })?
        }
    };
    let total = items.len();
    let end = start
        .saturating_add(usize::try_from(first).unwrap_or(0))
        .min(total);
    let mut page = Connection::new(start > 0, end < total);
    page.edges.extend(
        items
            .into_iter()
            .skip(start)
            .take(end - start)
            .map(|item| Edge::new(id(&item).to_string(), item)),
    );
    Ok(page)
}
