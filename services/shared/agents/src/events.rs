//! A run's durable events: each gets the run's next sequence number (no gaps: the number is
//! taken from the run's row, which the transaction locks), is written to `agent_events` and is
//! put in the outbox for `sb:agent-events`, all in the caller's transaction. A reader that
//! remembers the last `seq` it saw can resume from Postgres with nothing missed or repeated.

use chrono::Utc;
use sb_contracts::agents::RunEvent;
use sb_db::TenantTx;
use sb_kernel::RunId;
use serde_json::Value;
use uuid::Uuid;

use crate::AgentError;

/// Appends one event to the run's log and to the outbox.
pub async fn append(
    tx: &mut TenantTx,
    run: RunId,
    kind: &str,
    data: Value,
) -> Result<RunEvent, AgentError> {
    let seq = sqlx::query_scalar!(
        "UPDATE agent_runs SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
        run.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::NotFound("run"))?;
    let event = RunEvent {
        run_id: run,
        seq,
        kind: kind.to_owned(),
        data,
        at: Utc::now(),
    };
    sqlx::query!(
        "INSERT INTO agent_events (id, tenant_id, run_id, seq, type, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        Uuid::now_v7(),
        tx.tenant().as_uuid(),
        run.as_uuid(),
        seq,
        kind,
        &event.data,
        event.at,
    )
    .execute(&mut **tx)
    .await?;
    let tenant = tx.tenant();
    sb_bus::outbox::enqueue(tx, tenant, &event).await?;
    Ok(event)
}
