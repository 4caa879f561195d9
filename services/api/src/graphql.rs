//! GraphQL at `/graphql`, for the dashboard and power users: the reads the dashboard needs, each
//! resolved through the same `core` functions and the same role check (`core::access`) as REST.
//! A user gets `NOT_FOUND` for a tenant they are not a member of, exactly as REST answers 404.
//! A query reads one tenant, in one transaction, whatever its number of fields. Depth,
//! complexity and aliases are limited, a batch is refused, and
//! introspection is off unless `GRAPHQL_INTROSPECTION=true` (the demo turns it on). There is
//! no bundled playground: the common ones load their
//! JavaScript from a CDN, which this platform avoids; any GraphQL client works against `/graphql`.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, EmptyMutation, EmptySubscription, ErrorExtensions, Object, Schema};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{Role, TenantId, UserId};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::core::access::Membership;
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
use crate::core::webhooks::deliveries::{self as webhook_deliveries, WebhookWithDeliveries};
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
/// extractor as every REST body: the same content type check, body limit and errors. One
/// request is one query: a batch (a JSON array) is refused by the extractor.
async fn execute(
    State(state): State<ApiState>,
    axum::Extension(schema): axum::Extension<ApiSchema>,
    headers: HeaderMap,
    Json(mut request): Json<async_graphql::Request>,
) -> Result<axum::Json<async_graphql::Response>, ApiError> {
    limits::check_aliases(&request.query)?;
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        // A token that is present but not valid is refused outright, as on REST.
        request = request.data(authenticate(&state, token.trim()).await?);
    }
    let txs = RequestTxs::default();
    let response = schema.execute(request.data(txs.clone())).await;
    txs.finish().await;
    Ok(axum::Json(response))
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

/// Runs `read` in the node's tenant with at least `needed`, in the request's transaction for
/// that tenant.
macro_rules! read {
    ($node:expr, $ctx:ident, $needed:expr, |$tx:ident| $body:expr) => {{
        let txs = $ctx.data::<RequestTxs>()?;
        let mut txs = txs.0.lock().await;
        let $tx = txs.enter(state($ctx)?, &$node, $needed).await?;
        $body.await.map_err(gql)
    }};
}

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<UserView> {
        let session = session(ctx)?;
        let _alone = ctx.data::<RequestTxs>()?.alone().await;
        me::user(state(ctx)?, session.user).await.map_err(gql)
    }

    /// The tenants the signed-in user belongs to, with their role.
    async fn memberships(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MembershipView>> {
        let session = session(ctx)?;
        let _alone = ctx.data::<RequestTxs>()?.alone().await;
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
        let view = read!(node, ctx, Role::Viewer, |tx| tenants::get(tx))?;
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
}

/// The database work of one request. A query reads one tenant (a second is refused: ask for
/// it in a query of its own), in one transaction begun (with the membership check) by the first
/// field that needs it and committed when the response is made; its fields take turns on it.
/// A field outside the tenant (`me`, `memberships`) first commits that transaction and keeps
/// the others waiting while it reads, so a request holds one connection at a time and never
/// waits for a second while holding one (a pool full of such requests would wait forever).
#[derive(Clone, Default)]
struct RequestTxs(Arc<Mutex<Txs>>);

#[derive(Default)]
struct Txs {
    /// The tenant this query reads, fixed by its first tenant field.
    tenant: Option<TenantId>,
    open: Option<(TenantTx, Membership)>,
    /// Not a member, or the membership could not be read: every field of the tenant gets the
    /// same error without asking the database again.
    refused: Option<async_graphql::Error>,
}

impl Txs {
    /// The query's transaction in `node`'s tenant for a field that needs `needed`, begun on
    /// first use (and again after a field outside the tenant).
    async fn enter(
        &mut self,
        state: &ApiState,
        node: &TenantNode,
        needed: Role,
    ) -> async_graphql::Result<&mut TenantTx> {
        if *self.tenant.get_or_insert(node.id) != node.id {
            return Err(gql(ApiError::invalid(
                "query",
                "a query reads one tenant: ask for each tenant in a query of its own",
            )));
        }
        if let Some(refused) = &self.refused {
            return Err(refused.clone());
        }
        if self.open.is_none() {
            match access::open(state, node.user, node.id).await {
                Ok(open) => self.open = Some(open),
                Err(e) => {
                    let e = gql(e);
                    self.refused = Some(e.clone());
                    return Err(e);
                }
            }
        }
        let Some((tx, membership)) = &mut self.open else {
            return Err(gql(ApiError::internal(
                "the tenant's transaction was not kept",
            )));
        };
        membership.allows(needed, false).map_err(gql)?;
        Ok(tx)
    }

    /// Commits the open transaction, if any. Reads only: a failed commit changes no answer,
    /// so it is logged, not returned.
    async fn commit(&mut self) {
        if let Some((tx, _)) = self.open.take()
            && let Err(e) = tx.commit().await
        {
            tracing::warn!(error = %e, "a GraphQL read transaction did not commit");
        }
    }
}

impl RequestTxs {
    /// The request's state with no transaction open, for a field that reads outside the
    /// tenant; the other fields wait until the guard is dropped.
    async fn alone(&self) -> tokio::sync::MutexGuard<'_, Txs> {
        let mut txs = self.0.lock().await;
        txs.commit().await;
        txs
    }

    async fn finish(self) {
        self.0.lock().await.commit().await;
    }
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
            read!(self.node, ctx, Role::Viewer, |tx| workspaces::list(tx));
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
            read!(self.node, ctx, Role::Viewer, |tx| members::list(tx));
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
            read!(self.node, ctx, Role::Viewer, |tx| api_keys::list(tx));
        paginate(all?, first, after, |k| k.id)
    }

    async fn provider_credentials(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<CredentialView>> {
        read!(self.node, ctx, Role::Viewer, |tx| credentials::list(tx))
    }

    /// Budgets with the current period's spend.
    async fn budgets(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<BudgetView>> {
        read!(self.node, ctx, Role::Viewer, |tx| budgets::list(tx))
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
            read!(self.node, ctx, Role::Member, |tx| usage::aggregate(tx, &q));
        Ok(report?.rows)
    }

    /// Webhooks (never their secrets), each with its latest `deliveries` (1 to 50, default 10).
    #[graphql(complexity = "page_cost(deliveries, child_complexity)")]
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        deliveries: Option<i32>,
    ) -> async_graphql::Result<Vec<WebhookWithDeliveries>> {
        let per_webhook = i64::from(deliveries.unwrap_or(10));
        read!(self.node, ctx, Role::Viewer, |tx| {
            webhook_deliveries::recent(tx, per_webhook)
        })
    }

    /// Agents by name.
    async fn agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AgentView>> {
        read!(self.node, ctx, Role::Viewer, |tx| agents::list(tx))
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
            read!(self.node, ctx, Role::Viewer, |tx| runs::list(tx, &q));
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
        read!(self.node, ctx, Role::Viewer, |tx| runs::get(
            tx,
            RunId::from_uuid(id)
        ))
    }

    /// A run's step log.
    async fn run_steps(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Vec<StepView>> {
        read!(self.node, ctx, Role::Viewer, |tx| runs::steps(
            tx,
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
            read!(self.node, ctx, Role::Viewer, |tx| runs::approvals(tx, &q));
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
            read!(self.node, ctx, Role::Admin, |tx| audit::list(tx, &q));
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

/// Bounds a query before it runs, beyond depth and complexity (which the schema checks).
mod limits {
    use std::collections::HashMap;

    use async_graphql::parser::parse_query;
    use async_graphql::parser::types::{FragmentDefinition, Selection, SelectionSet};
    use async_graphql::{Name, Positioned};

    use crate::error::{ApiError, ApiResult};

    /// Most aliased fields in one query, counted as the query runs them (a fragment counts
    /// each time it is spread).
    pub const ALIASES: usize = 50;
    /// Most selections walked while counting, so fragments spread inside fragments cannot make
    /// the count itself expensive.
    const WALK: usize = 10_000;

    /// Refuses a query with more than [`ALIASES`] aliased fields. A query that does not parse
    /// passes: the schema answers it with the parse error.
    pub fn check_aliases(query: &str) -> ApiResult<()> {
        let Ok(doc) = parse_query(query) else {
            return Ok(());
        };
        let mut count = Count {
            fragments: &doc.fragments,
            aliases: 0,
            walked: 0,
        };
        let within = doc
            .operations
            .iter()
            .all(|(_, op)| count.selections(&op.node.selection_set, 0));
        if within {
            Ok(())
        } else {
            Err(ApiError::invalid(
                "query",
                format!(
                    "too many aliased fields: at most {ALIASES} in one query (fragments count each time they are spread)"
                ),
            ))
        }
    }

    struct Count<'a> {
        fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
        aliases: usize,
        walked: usize,
    }

    impl Count<'_> {
        /// Adds up `set`'s aliases; false as soon as a bound is passed.
        fn selections(&mut self, set: &Positioned<SelectionSet>, depth: usize) -> bool {
            // Deeper than any valid query: a fragment that spreads itself.
            if depth > 64 {
                return false;
            }
            set.node.items.iter().all(|item| {
                self.walked += 1;
                if self.walked > WALK {
                    return false;
                }
                match &item.node {
                    Selection::Field(field) => {
                        self.aliases += usize::from(field.node.alias.is_some());
                        self.aliases <= ALIASES
                            && self.selections(&field.node.selection_set, depth + 1)
                    }
                    Selection::InlineFragment(inline) => {
                        self.selections(&inline.node.selection_set, depth + 1)
                    }
                    Selection::FragmentSpread(spread) => {
                        match self.fragments.get(&spread.node.fragment_name.node) {
                            Some(fragment) => {
                                self.selections(&fragment.node.selection_set, depth + 1)
                            }
                            // Unknown fragment: the schema's validation names it.
                            None => true,
                        }
                    }
                }
            })
        }
    }
}
