//! Agents: what a run executes — a model the tenant's providers serve, instructions, the tools
//! it may use and which of them wait for a person, its limits and its per-run budget.

use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::Micros;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::validate::Checks;
use crate::error::{ApiError, ApiResult, OnConstraint};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub model: String,
    pub instructions: String,
    /// The tools it may use.
    pub tools: Vec<String>,
    /// The tools whose every call waits for a person's approval.
    pub approval_tools: Vec<String>,
    /// Model calls per run; none: `MAX_AGENT_ITERATIONS`.
    pub max_iterations: Option<i32>,
    /// Wall-clock limit per run; none: `AGENT_TIMEOUT_SECONDS`.
    pub timeout_seconds: Option<i32>,
    /// Each run's budget in micro-dollars; none: no run budget.
    pub budget_micros: Option<i64>,
    pub team: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new agent, or (`PUT`) an agent's whole new definition.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    pub name: String,
    /// Any model the tenant's provider entries serve.
    pub model: String,
    #[serde(default)]
    pub instructions: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub approval_tools: Vec<String>,
    pub max_iterations: Option<i32>,
    pub timeout_seconds: Option<i32>,
    /// Each run's budget in US dollars (up to six decimals), such as `0.50`.
    #[schema(value_type = Option<f64>, example = 0.5)]
    pub budget_usd: Option<serde_json::Number>,
    /// A team: lower-case letters, digits, `-` and `_`.
    pub team: Option<String>,
}

/// Dollars from an API body, exactly (see `Micros::parse_usd`).
pub fn usd(field: &str, value: Option<&serde_json::Number>) -> ApiResult<Option<i64>> {
    value
        .map(|n| {
            Micros::parse_usd(&n.to_string())
                .map(|m| m.0)
                .ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        "a positive amount of US dollars with at most six decimals",
                    )
                })
        })
        .transpose()
}

async fn check(tx: &mut TenantTx, input: &AgentInput) -> ApiResult<Option<i64>> {
    let mut checks = Checks::new();
    checks
        .text("name", &input.name, 1, 100)
        .text("model", &input.model, 1, 200)
        .check(
            input.instructions.len() <= 100_000,
            "instructions",
            "at most 100,000 characters",
        )
        .check(
            input
                .tools
                .iter()
                .all(|t| sb_agents::TOOL_NAMES.contains(&t.as_str())),
            "tools",
            format!("each one of {}", sb_agents::TOOL_NAMES.join(", ")),
        )
        .check(
            input.approval_tools.iter().all(|t| input.tools.contains(t)),
            "approval_tools",
            "only tools the agent may use",
        )
        .check(
            input.max_iterations.is_none_or(|n| (1..=1000).contains(&n)),
            "max_iterations",
            "from 1 to 1000",
        )
        .check(
            input
                .timeout_seconds
                .is_none_or(|n| (1..=604_800).contains(&n)),
            "timeout_seconds",
            "from 1 to 604800 (a week)",
        )
        .check(
            input.team.as_deref().is_none_or(valid_team),
            "team",
            "1 to 63 lower-case letters, digits, - and _, starting with a letter or digit",
        );
    checks.finish()?;
    let budget = usd("budget_usd", input.budget_usd.as_ref())?;
    let served = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM provider_credentials
                           WHERE enabled AND (cardinality(models) = 0 OR $1 = ANY(models))) AS "served!""#,
        input.model
    )
    .fetch_one(&mut **tx)
    .await?;
    if !served {
        return Err(ApiError::invalid(
            "model",
            "none of the tenant's provider entries serves this model",
        ));
    }
    Ok(budget)
}

fn valid_team(team: &str) -> bool {
    let mut bytes = team.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && team.len() <= 63
        && team
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub async fn list(tx: &mut TenantTx) -> ApiResult<Vec<AgentView>> {
    Ok(sqlx::query_as!(
        AgentView,
        "SELECT id, name, model, instructions, tools, approval_tools, max_iterations, timeout_seconds,
                budget_micros, team, created_at, updated_at
           FROM agents ORDER BY name"
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> ApiResult<AgentView> {
    sqlx::query_as!(
        AgentView,
        "SELECT id, name, model, instructions, tools, approval_tools, max_iterations, timeout_seconds,
                budget_micros, team, created_at, updated_at
           FROM agents WHERE id = $1",
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("agent"))
}

pub async fn create(tx: &mut TenantTx, input: &AgentInput) -> ApiResult<AgentView> {
    let budget = check(tx, input).await?;
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO agents (id, tenant_id, name, model, instructions, tools, approval_tools,
                             max_iterations, timeout_seconds, budget_micros, team)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        id,
        tx.tenant().as_uuid(),
        input.name,
        input.model,
        input.instructions,
        &input.tools,
        &input.approval_tools,
        input.max_iterations,
        input.timeout_seconds,
        budget,
        input.team,
    )
    .execute(&mut **tx)
    .await
    .on_unique(|| {
        ApiError::conflict(
            "name_taken",
            "an agent of this tenant already has this name",
        )
    })?;
    get(tx, id).await
}

/// Replaces the agent's definition. Runs already created keep the limits they started with.
pub async fn replace(tx: &mut TenantTx, id: Uuid, input: &AgentInput) -> ApiResult<AgentView> {
    let budget = check(tx, input).await?;
    let updated = sqlx::query!(
        "UPDATE agents SET name = $2, model = $3, instructions = $4, tools = $5, approval_tools = $6,
                           max_iterations = $7, timeout_seconds = $8, budget_micros = $9, team = $10,
                           updated_at = now()
          WHERE id = $1",
        id,
        input.name,
        input.model,
        input.instructions,
        &input.tools,
        &input.approval_tools,
        input.max_iterations,
        input.timeout_seconds,
        budget,
        input.team,
    )
    .execute(&mut **tx)
    .await
    .on_unique(|| ApiError::conflict("name_taken", "an agent of this tenant already has this name"))?
    .rows_affected();
    if updated == 0 {
        return Err(ApiError::not_found("agent"));
    }
    get(tx, id).await
}

/// The health of one of the tenant's teams (`_`: agents without a team); 404 when no agent
/// of the tenant is in it.
pub async fn team_health(
    tx: &mut TenantTx,
    team: &str,
) -> ApiResult<sb_agents::health::TeamHealth> {
    let team = (team != "_").then_some(team);
    if !sb_agents::health::exists(&mut **tx, team).await? {
        return Err(ApiError::not_found("team"));
    }
    Ok(sb_agents::health::team(&mut **tx, team).await?)
}

/// Deletes the agent. Its runs stay (they keep the agent's name).
pub async fn delete(tx: &mut TenantTx, id: Uuid) -> ApiResult<()> {
    let deleted = sqlx::query!("DELETE FROM agents WHERE id = $1", id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found("agent"));
    }
    Ok(())
}
