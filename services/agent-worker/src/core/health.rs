//! A team's health, read across tenants (system role) for the worker's operator route.

use sb_db::SystemPool;

pub struct TeamHealth {
    pub in_flight: i64,
    pub waiting_approval: i64,
    pub failures: i64,
    pub p95_step_seconds: Option<f64>,
}

/// `team` `_` stands for agents that have no team.
pub async fn team(system: &SystemPool, team: &str) -> Result<TeamHealth, sqlx::Error> {
    let team = (team != "_").then_some(team);
    let row = sqlx::query!(
        r#"WITH runs AS (
               SELECT r.id, r.status, r.finished_at FROM agent_runs r JOIN agents a ON a.id = r.agent_id
                WHERE a.team IS NOT DISTINCT FROM $1
           )
           SELECT (SELECT count(*) FROM runs WHERE status = 'running') AS "in_flight!",
                  (SELECT count(*) FROM runs WHERE status = 'waiting_approval') AS "waiting!",
                  (SELECT count(*) FROM runs WHERE status IN ('failed', 'timed_out')
                      AND finished_at > now() - interval '15 minutes') AS "failures!",
                  (SELECT percentile_cont(0.95) WITHIN GROUP (
                              ORDER BY extract(epoch FROM s.finished_at - s.started_at))
                     FROM agent_steps s JOIN runs ON runs.id = s.run_id
                    WHERE s.finished_at > now() - interval '15 minutes' AND s.started_at IS NOT NULL)
                      AS p95"#,
        team,
    )
    .fetch_one(system.pool())
    .await?;
    Ok(TeamHealth {
        in_flight: row.in_flight,
        waiting_approval: row.waiting,
        failures: row.failures,
        p95_step_seconds: row.p95,
    })
}
