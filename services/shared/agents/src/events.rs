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
    let mut events = append_all(tx, run, &[(kind, data)]).await?;
    events.pop().ok_or(AgentError::NotFound("run"))
}

/// Appends events to the run's log, in order, and to the outbox: two statements however many
/// there are (the sequence numbers and the log in one, the outbox in the other).
pub async fn append_all(
    tx: &mut TenantTx,
    run: RunId,
    events: &[(&str, Value)],
) -> Result<Vec<RunEvent>, AgentError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let at = Utc::now();
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| *kind).collect();
    let payloads: Vec<Value> = events.iter().map(|(_, data)| data.clone()).collect();
    let count = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // The run's row is locked by the UPDATE until the transaction ends, so the numbers it
    // hands out are the run's next ones, with no gap, whoever else appends.
    let last = sqlx::query_scalar!(
        r#"WITH numbered AS (
             UPDATE agent_runs SET last_seq = last_seq + $4 WHERE id = $3 RETURNING last_seq
           ), logged AS (
             INSERT INTO agent_events (id, tenant_id, run_id, seq, type, payload, created_at)
             SELECT x.id, $2, $3, numbered.last_seq - $4 + x.n::int, x.kind, x.payload, $7
               FROM numbered,
                    UNNEST($1::uuid[], $5::text[], $6::jsonb[]) WITH ORDINALITY AS x(id, kind, payload, n)
           )
           SELECT last_seq AS "last_seq!" FROM numbered"#,
        &ids,
        tx.tenant().as_uuid(),
        run.as_uuid(),
        count,
        &kinds as &[&str],
        &payloads,
        at,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::NotFound("run"))?;
    let first = last - count + 1;
    let events: Vec<RunEvent> = events
        .iter()
        .zip(first..)
        .map(|((kind, data), seq)| RunEvent {
            run_id: run,
            seq,
            kind: (*kind).to_owned(),
            data: data.clone(),
            at,
        })
        .collect();
    let tenant = tx.tenant();
    let outgoing: Vec<(sb_kernel::TenantId, &RunEvent)> =
        events.iter().map(|e| (tenant, e)).collect();
    sb_bus::outbox::enqueue_all(tx, &outgoing).await?;
    Ok(events)
}
