//! The step log as it is read back: by the worker to rebuild the conversation, by the api to
//! show it. And the hash that binds an approval to one exact tool call.

use chrono::{DateTime, Utc};
use sb_db::TenantTx;
use sb_kernel::{RunId, StepKind, StepState};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AgentError;

/// One step of a run.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject))]
pub struct StepView {
    /// For a tool call, the idempotency key handed to the tool.
    pub id: Uuid,
    /// Position in the run, from 1.
    pub step: i32,
    #[schema(value_type = String, example = "tool")]
    pub kind: StepKind,
    #[schema(value_type = String, example = "finished")]
    pub state: StepState,
    /// A model step: the assistant's message.
    pub message: Option<Value>,
    pub tool: Option<String>,
    pub arguments: Option<Value>,
    /// sha256 of the tool's name and its canonical arguments, hex.
    pub call_hash: Option<String>,
    pub tool_call_id: Option<String>,
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Every step of a run, in order.
pub async fn list(tx: &mut TenantTx, run: RunId) -> Result<Vec<StepView>, AgentError> {
    Ok(sqlx::query_as!(
        StepView,
        r#"SELECT id, step, kind AS "kind: StepKind", state AS "state: StepState", message, tool,
                  arguments, call_hash, tool_call_id, result, created_at, started_at, finished_at
             FROM agent_steps WHERE run_id = $1 ORDER BY step"#,
        run.as_uuid()
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// The hash that names one exact tool call: sha256 over the tool's name, a NUL, and the
/// arguments written canonically (object keys sorted, no insignificant white space), so the
/// same call always hashes the same and any change to the arguments changes it.
pub fn call_hash(tool: &str, arguments: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tool.as_bytes());
    hasher.update([0]);
    hasher.update(canonical(arguments).as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON with object keys in sorted order at every depth. serde_json's map is ordered by key
/// unless its `preserve_order` feature is on, which nothing here enables; sorting explicitly
/// keeps the hash stable whatever the feature set.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// One step of a run.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<StepView, AgentError> {
    sqlx::query_as!(
        StepView,
        r#"SELECT id, step, kind AS "kind: StepKind", state AS "state: StepState", message, tool,
                  arguments, call_hash, tool_call_id, result, created_at, started_at, finished_at
             FROM agent_steps WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::NotFound("step"))
}

/// What a new step records.
pub enum NewStep<'a> {
    /// The model's message (recorded `finished`).
    Model { message: &'a Value },
    /// A tool call the model asked for, in the state it starts in, with its result when it is
    /// settled at once (a tool the agent may not use).
    Tool {
        tool: &'a str,
        arguments: &'a Value,
        tool_call_id: &'a str,
        state: StepState,
        result: Option<Value>,
    },
}

/// Appends a step to the run's log (the next position) and writes its `run.step` event.
pub async fn append(
    tx: &mut TenantTx,
    run: RunId,
    new: NewStep<'_>,
) -> Result<StepView, AgentError> {
    let id = Uuid::now_v7();
    let (kind, state, message, tool, arguments, hash, call_id, result) = match new {
        NewStep::Model { message } => (
            StepKind::Model,
            StepState::Finished,
            Some(message.clone()),
            None,
            None,
            None,
            None,
            None,
        ),
        NewStep::Tool {
            tool,
            arguments,
            tool_call_id,
            state,
            result,
        } => (
            StepKind::Tool,
            state,
            None,
            Some(tool.to_owned()),
            Some(arguments.clone()),
            Some(call_hash(tool, arguments)),
            Some(tool_call_id.to_owned()),
            result,
        ),
    };
    sqlx::query!(
        "INSERT INTO agent_steps (id, tenant_id, run_id, step, kind, state, message, tool, arguments,
                                  call_hash, tool_call_id, result, finished_at)
         SELECT $1, $2, $3, coalesce(max(step), 0) + 1, $4, $5, $6, $7, $8, $9, $10, $11,
                CASE WHEN $5 IN ('finished', 'rejected') THEN now() END
           FROM agent_steps WHERE run_id = $3",
        id,
        tx.tenant().as_uuid(),
        run.as_uuid(),
        kind.as_str(),
        state.as_str(),
        message,
        tool,
        arguments,
        hash,
        call_id,
        result,
    )
    .execute(&mut **tx)
    .await?;
    let view = get(tx, id).await?;
    crate::events::append(
        tx,
        run,
        sb_contracts::agents::kinds::RUN_STEP,
        serde_json::json!(view),
    )
    .await?;
    Ok(view)
}

/// Moves a tool step from one of `from` to `to` (with its result when it finished) and writes
/// its `run.step` event. False when the step was not in one of `from`.
pub async fn advance(
    tx: &mut TenantTx,
    run: RunId,
    id: Uuid,
    from: &[StepState],
    to: StepState,
    result: Option<Value>,
) -> Result<bool, AgentError> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let moved = sqlx::query!(
        "UPDATE agent_steps
            SET state = $3, result = coalesce($4, result),
                started_at = CASE WHEN $3 = 'started' THEN now() ELSE started_at END,
                finished_at = CASE WHEN $3 IN ('finished', 'rejected') THEN now() ELSE finished_at END
          WHERE id = $1 AND state = ANY($2)",
        id,
        &from as &[&str],
        to.as_str(),
        result,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if moved {
        let view = get(tx, id).await?;
        crate::events::append(
            tx,
            run,
            sb_contracts::agents::kinds::RUN_STEP,
            serde_json::json!(view),
        )
        .await?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_binds_the_tool_and_every_argument_but_not_key_order() {
        let a = call_hash("append_file", &json!({"path": "a.txt", "text": "x"}));
        let b = call_hash("append_file", &json!({"text": "x", "path": "a.txt"}));
        assert_eq!(a, b, "key order does not matter");
        assert_ne!(
            a,
            call_hash("append_file", &json!({"path": "a.txt", "text": "y"}))
        );
        assert_ne!(
            a,
            call_hash("write_file", &json!({"path": "a.txt", "text": "x"}))
        );
        assert_eq!(a.len(), 64);
    }
}
