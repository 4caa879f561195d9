//! Reading a run's durable events back, in order, from a cursor: what the realtime edge (the
//! socket.io replay and the SSE stream) resumes from. `events::append` gives every event the
//! run's next `seq` with no gap, so "every event after `seq` N" is exactly what a reader that
//! saw N has not seen. Row-level security is the boundary: the caller's `TenantTx`.

use sb_contracts::agents::RunEvent;
use sb_db::TenantTx;
use sb_kernel::{RunId, RunStatus};

use crate::AgentError;

/// Where a run stands, for a reader deciding whether more will come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunHead {
    pub status: RunStatus,
    /// The `seq` of its newest event (0 before the first).
    pub last_seq: i32,
}

/// The run's status and newest `seq`, or `None` when the tenant has no such run.
pub async fn head(tx: &mut TenantTx, run: RunId) -> Result<Option<RunHead>, AgentError> {
    Ok(sqlx::query_as!(
        RunHead,
        r#"SELECT status AS "status: RunStatus", last_seq FROM agent_runs WHERE id = $1"#,
        run.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?)
}

/// At most `limit` of the run's events with `seq > after`, oldest first.
pub async fn after(
    tx: &mut TenantTx,
    run: RunId,
    after: i32,
    limit: i64,
) -> Result<Vec<RunEvent>, AgentError> {
    let rows = sqlx::query!(
        r#"SELECT seq, type AS kind, payload, created_at FROM agent_events
            WHERE tenant_id = $1 AND run_id = $2 AND seq > $3
            ORDER BY seq LIMIT $4"#,
        tx.tenant().as_uuid(),
        run.as_uuid(),
        after,
        limit,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RunEvent {
            run_id: run,
            seq: r.seq,
            kind: r.kind,
            data: r.payload,
            at: r.created_at,
        })
        .collect())
}

/// Whether `event` is the run's last: a `run.status` to a terminal state.
pub fn is_terminal(event: &RunEvent) -> bool {
    event.kind == sb_contracts::agents::kinds::RUN_STATUS
        && event.data["status"]
            .as_str()
            .and_then(|s| s.parse::<RunStatus>().ok())
            .is_some_and(|s| s.is_terminal())
}
