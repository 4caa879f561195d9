//! A team of agents' health: runs in flight, runs waiting for a decision, failures and the p95
//! of step times over the last 15 minutes. The api reads it in a tenant's transaction (its own
//! runs only); the agent-worker's operator route reads it across tenants (system role).

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, Serialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct TeamHealth {
    pub runs_in_flight: i64,
    pub runs_waiting_approval: i64,
    /// Runs that ended failed or timed out in the last 15 minutes.
    pub failures_15m: i64,
    /// The 95th percentile of tool and model step times in the last 15 minutes.
    pub p95_step_seconds_15m: Option<f64>,
}

/// `team` none stands for agents that have no team.
pub async fn team<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    team: Option<&str>,
) -> Result<TeamHealth, sqlx::Error> {
    sqlx::query_as!(
        TeamHealth,
        r#"WITH runs AS (
               SELECT r.id, r.status, r.finished_at FROM agent_runs r JOIN agents a ON a.id = r.agent_id
                WHERE a.team IS NOT DISTINCT FROM $1
           )
           SELECT (SELECT count(*) FROM runs WHERE status = 'running') AS "runs_in_flight!",
                  (SELECT count(*) FROM runs WHERE status = 'waiting_approval') AS "runs_waiting_approval!",
                  (SELECT count(*) FROM runs WHERE status IN ('failed', 'timed_out')
                      AND finished_at > now() - interval '15 minutes') AS "failures_15m!",
                  (SELECT percentile_cont(0.95) WITHIN GROUP (
                              ORDER BY extract(epoch FROM s.finished_at - s.started_at))
                     FROM agent_steps s JOIN runs ON runs.id = s.run_id
                    WHERE s.finished_at > now() - interval '15 minutes' AND s.started_at IS NOT NULL)
                      AS p95_step_seconds_15m"#,
        team,
    )
    .fetch_one(conn)
    .await
}

/// Whether any agent is in `team` (none: agents without a team).
pub async fn exists<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    team: Option<&str>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM agents WHERE team IS NOT DISTINCT FROM $1) AS "exists!""#,
        team
    )
    .fetch_one(conn)
    .await
}
