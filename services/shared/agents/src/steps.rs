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
    let mut views = append_all(tx, run, &[new]).await?;
    views.pop().ok_or(AgentError::NotFound("run"))
}

/// Appends steps to the run's log in order (the next positions) and writes their `run.step`
/// events: three statements however many steps there are.
pub async fn append_all(
    tx: &mut TenantTx,
    run: RunId,
    new: &[NewStep<'_>],
) -> Result<Vec<StepView>, AgentError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Columns::default();
    for step in new {
        rows.push(step);
    }
    let mut views = sqlx::query_as!(
        StepView,
        r#"INSERT INTO agent_steps (id, tenant_id, run_id, step, kind, state, message, tool, arguments,
                                   call_hash, tool_call_id, result, finished_at)
           SELECT x.id, $2, $3, last.step + x.n::int, x.kind, x.state, x.message, x.tool, x.arguments,
                  x.call_hash, x.tool_call_id, x.result,
                  CASE WHEN x.state IN ('finished', 'rejected') THEN now() END
             FROM (SELECT coalesce(max(step), 0) AS step FROM agent_steps WHERE run_id = $3) AS last,
                  UNNEST($1::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::jsonb[],
                         $9::text[], $10::text[], $11::jsonb[])
                  WITH ORDINALITY AS x(id, kind, state, message, tool, arguments, call_hash,
                                       tool_call_id, result, n)
           RETURNING id, step, kind AS "kind: StepKind", state AS "state: StepState", message,
                     tool, arguments, call_hash, tool_call_id, result, created_at, started_at,
                     finished_at"#,
        &rows.id,
        tx.tenant().as_uuid(),
        run.as_uuid(),
        &rows.kind as &[&str],
        &rows.state as &[&str],
        &rows.message as &[Option<Value>],
        &rows.tool as &[Option<String>],
        &rows.arguments as &[Option<Value>],
        &rows.call_hash as &[Option<String>],
        &rows.tool_call_id as &[Option<String>],
        &rows.result as &[Option<Value>],
    )
    .fetch_all(&mut **tx)
    .await?;
    views.sort_by_key(|v| v.step);
    let events: Vec<(&str, Value)> = views
        .iter()
        .map(|v| (sb_contracts::agents::kinds::RUN_STEP, serde_json::json!(v)))
        .collect();
    crate::events::append_all(tx, run, &events).await?;
    Ok(views)
}

/// New steps as columns, for one `INSERT … SELECT FROM UNNEST`.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    kind: Vec<&'static str>,
    state: Vec<&'static str>,
    message: Vec<Option<Value>>,
    tool: Vec<Option<String>>,
    arguments: Vec<Option<Value>>,
    call_hash: Vec<Option<String>>,
    tool_call_id: Vec<Option<String>>,
    result: Vec<Option<Value>>,
}

impl Columns {
    fn push(&mut self, step: &NewStep<'_>) {
        self.id.push(Uuid::now_v7());
        match step {
            NewStep::Model { message } => {
                self.kind.push(StepKind::Model.as_str());
                self.state.push(StepState::Finished.as_str());
                self.message.push(Some((*message).clone()));
                self.tool.push(None);
                self.arguments.push(None);
                self.call_hash.push(None);
                self.tool_call_id.push(None);
                self.result.push(None);
            }
            NewStep::Tool {
                tool,
                arguments,
                tool_call_id,
                state,
                result,
            } => {
                self.kind.push(StepKind::Tool.as_str());
                self.state.push(state.as_str());
                self.message.push(None);
                self.tool.push(Some((*tool).to_owned()));
                self.arguments.push(Some((*arguments).clone()));
                self.call_hash.push(Some(call_hash(tool, arguments)));
                self.tool_call_id.push(Some((*tool_call_id).to_owned()));
                self.result.push(result.clone());
            }
        }
    }
}

/// Moves a tool step from one of `from` to `to` (with its result when it finished) and writes
/// its `run.step` event. The step as it is now, or `None` when it was not in one of `from`.
pub async fn advance(
    tx: &mut TenantTx,
    run: RunId,
    id: Uuid,
    from: &[StepState],
    to: StepState,
    result: Option<Value>,
) -> Result<Option<StepView>, AgentError> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let moved = sqlx::query_as!(
        StepView,
        r#"UPDATE agent_steps
              SET state = $3, result = coalesce($4, result),
                  started_at = CASE WHEN $3 = 'started' THEN now() ELSE started_at END,
                  finished_at = CASE WHEN $3 IN ('finished', 'rejected') THEN now() ELSE finished_at END
            WHERE id = $1 AND state = ANY($2)
        RETURNING id, step, kind AS "kind: StepKind", state AS "state: StepState", message, tool,
                  arguments, call_hash, tool_call_id, result, created_at, started_at, finished_at"#,
        id,
        &from as &[&str],
        to.as_str(),
        result,
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(view) = &moved {
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
