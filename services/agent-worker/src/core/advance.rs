//! One step of a run (STYLE.md, habit 9): do the one thing the run calls for, checkpoint it,
//! and say what comes next. The driver loops over it.
//!
//! The driver reads the run, its agent and its step log once when it takes the run, and keeps
//! them while it holds it: only the holder appends steps or moves them, and a run that waits
//! for a person is given back (whoever takes it next reads it again). Each write begins with
//! the lease's fence, which also reads what others may change meanwhile (a cancellation).
//!
//! The order of a tool call is what makes it happen at most once: the step is marked
//! `started` and committed before the tool runs, and `finished` with its result after. A step
//! found `started` when a run is taken over was interrupted by a crash: a read-only tool is
//! run again; any other is marked `uncertain` and waits for a person, never repeated silently.
//! Only calls whose stored tool and arguments still hash to the recorded hash run, so the call
//! that was approved is the call that runs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sb_agents::approvals::{self, Request};
use sb_agents::steps::{self, NewStep, StepView};
use sb_agents::{AgentError, runs};
use sb_db::TenantTx;
use sb_kernel::{RunId, RunStatus, StepKind, StepState, TenantId};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::core::conversation::{self, Reply};
use crate::core::model::Called;
use crate::core::tooling;
use crate::core::worker::Worker;
use crate::core::{lease, metrics, team_limit};

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// Another step is due at once.
    Next,
    /// The run waits for a person (or a slot): give it back.
    Parked,
    /// The run ended.
    Ended,
    /// Another worker holds the run now: stop touching it.
    LeaseLost,
}

/// A run this worker holds.
pub struct HeldRun {
    pub id: RunId,
    pub tenant: TenantId,
    /// The run's gateway key (secret).
    pub key: String,
    /// Fired when this worker must let go of the run (shutdown, lease lost): a tool call
    /// stopped by it stays `started`, as after a crash.
    pub stop: CancellationToken,
    /// Fired by `stop`, and by a cancellation of the run: stops a tool or a model call.
    pub halt: CancellationToken,
    /// Model calls that failed in a row.
    pub model_failures: u32,
    /// Time the current step spent waiting on the model or a tool (the rest is the worker's
    /// own overhead: reads, checkpoints, events).
    pub waited: Duration,
    /// The run as read when it was taken, kept up to date by this driver's own writes.
    pub known: Option<Known>,
}

/// What the driver knows of its run between steps.
pub struct Known {
    state: RunState,
    steps: Vec<StepView>,
}

impl Known {
    /// The tool call in hand: the first one not yet settled.
    fn pending_tool(&self) -> Option<&StepView> {
        self.steps.iter().find(|s| {
            s.kind == StepKind::Tool
                && !matches!(s.state, StepState::Finished | StepState::Rejected)
        })
    }

    fn out_of_iterations(&self) -> bool {
        self.state.iterations >= self.state.max_iterations
    }

    /// Records a step as this driver just wrote it.
    fn record(&mut self, view: StepView) {
        match self.steps.iter_mut().find(|s| s.id == view.id) {
            Some(step) => *step = view,
            None => self.steps.push(view),
        }
    }
}

/// What a step needs of the run and its agent.
struct RunState {
    input: Value,
    iterations: i32,
    max_iterations: i32,
    deadline: DateTime<Utc>,
    budget_micros: Option<i64>,
    workspace: Option<uuid::Uuid>,
    /// The agent's team (`_` for none), for the metrics.
    team: String,
    model: String,
    instructions: String,
    tools: Vec<String>,
    approval_tools: Vec<String>,
}

async fn load(tx: &mut TenantTx, run: RunId) -> Result<Known, AgentError> {
    let row = sqlx::query!(
        r#"SELECT r.input, r.iterations, r.max_iterations,
                  coalesce(r.started_at, r.created_at) + make_interval(secs => r.timeout_seconds) AS "deadline!",
                  r.budget_micros, r.workspace_id,
                  a.model AS "model?", a.instructions AS "instructions?", a.tools AS "tools?",
                  a.approval_tools AS "approval_tools?", a.team
             FROM agent_runs r LEFT JOIN agents a ON a.id = r.agent_id
            WHERE r.id = $1"#,
        run.as_uuid()
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AgentError::NotFound("run"))?;
    let state = RunState {
        input: row.input,
        iterations: row.iterations,
        max_iterations: row.max_iterations,
        deadline: row.deadline,
        budget_micros: row.budget_micros,
        workspace: row.workspace_id,
        team: row.team.unwrap_or_else(|| "_".to_owned()),
        model: row.model.unwrap_or_default(),
        instructions: row.instructions.unwrap_or_default(),
        tools: row.tools.unwrap_or_default(),
        approval_tools: row.approval_tools.unwrap_or_default(),
    };
    let steps = steps::list(tx, run).await?;
    Ok(Known { state, steps })
}

/// Begins a step's transaction: fences the lease, ends the run when it must end (cancelled,
/// out of time), and on the first step of a hold reads the run. `Err` is what the driver does
/// instead of the step.
async fn open(
    worker: &Worker,
    run: &mut HeldRun,
) -> Result<Result<TenantTx, Advanced>, AgentError> {
    let mut tx = worker.db.begin(run.tenant).await?;
    let Some(fenced) = lease::fence(&mut tx, run.id, &worker.id).await? else {
        return Ok(Err(Advanced::LeaseLost));
    };
    if fenced.status.is_terminal() {
        tx.commit().await?;
        return Ok(Err(Advanced::Ended));
    }
    if fenced.cancel_requested {
        runs::finish(
            &mut tx,
            run.id,
            RunStatus::Cancelled,
            None,
            Some("cancelled"),
            None,
        )
        .await?;
        tx.commit().await?;
        return Ok(Err(Advanced::Ended));
    }
    if fenced.deadline <= Utc::now() {
        let message = "the run passed its time limit".to_owned();
        runs::end_badly(&mut tx, run.id, RunStatus::TimedOut, "timeout", message).await?;
        tx.commit().await?;
        return Ok(Err(Advanced::Ended));
    }
    if run.known.is_none() {
        if fenced.status == RunStatus::WaitingApproval {
            let expired = approvals::expire(&mut tx, run.id).await?;
            tx.commit().await?;
            return Ok(Err(if expired {
                Advanced::Ended
            } else {
                Advanced::Parked
            }));
        }
        if fenced.status == RunStatus::Queued {
            approvals::set_status(&mut tx, run.id, RunStatus::Running).await?;
        }
        run.known = Some(load(&mut tx, run.id).await?);
    }
    Ok(Ok(tx))
}

/// Does the next thing the run calls for.
///
/// While it writes, a step takes the known run out of [`HeldRun::known`] and puts it back
/// only after its commit: a step that fails leaves nothing known, and the next one reads the
/// run again instead of trusting a write that may not have happened.
pub async fn advance(worker: &Worker, run: &mut HeldRun) -> Result<Advanced, AgentError> {
    // A model call needs nothing from the database first: the run is known, and the answer's
    // checkpoint fences the lease. A halted (cancelled) or late run goes through `open`,
    // which ends it.
    let model_call_due = !run.halt.is_cancelled()
        && run.known.as_ref().is_some_and(|k| {
            k.pending_tool().is_none() && !k.out_of_iterations() && k.state.deadline > Utc::now()
        });
    if model_call_due {
        return model_step(worker, run).await;
    }
    let mut tx = match open(worker, run).await? {
        Ok(tx) => tx,
        Err(instead) => return Ok(instead),
    };
    let Some(known) = run.known.take() else {
        return Err(AgentError::NotFound("run"));
    };
    if let Some(step) = known.pending_tool().cloned() {
        return tool_step(worker, run, known, tx, step).await;
    }
    if known.out_of_iterations() {
        let message = format!(
            "the run made its {} model calls",
            known.state.max_iterations
        );
        runs::end_badly(
            &mut tx,
            run.id,
            RunStatus::Failed,
            "max_iterations",
            message,
        )
        .await?;
        tx.commit().await?;
        return Ok(Advanced::Ended);
    }
    // The model call holds no transaction (and no row lock) while it runs.
    tx.commit().await?;
    run.known = Some(known);
    model_step(worker, run).await
}

/// The tool call in hand: ask for approval, run it, or decide what an interrupted one means.
async fn tool_step(
    worker: &Worker,
    run: &mut HeldRun,
    mut known: Known,
    mut tx: TenantTx,
    step: StepView,
) -> Result<Advanced, AgentError> {
    let tool = step.tool.as_deref().unwrap_or_default();
    let arguments = step.arguments.clone().unwrap_or(Value::Null);
    let hash = step.call_hash.as_deref().unwrap_or_default();
    let needs_approval = known.state.approval_tools.iter().any(|t| t == tool);
    let moved = match step.state {
        StepState::Proposed | StepState::Uncertain => {
            let request = Request::Tool {
                step_id: step.id,
                tool,
                arguments: &arguments,
                call_hash: hash,
            };
            approvals::request(&mut tx, run.id, request, worker.approval_ttl_seconds()).await?;
            tx.commit().await?;
            return Ok(Advanced::Parked);
        }
        StepState::Started if !tooling::is_idempotent(tool) => {
            // Interrupted by a crash, and not safe to repeat: a person decides.
            let from = [StepState::Started];
            steps::advance(&mut tx, run.id, step.id, &from, StepState::Uncertain, None).await?
        }
        StepState::Approved | StepState::Started => {
            if steps::call_hash(tool, &arguments) != hash
                || (needs_approval && !approved_exactly(&mut tx, step.id, hash).await?)
            {
                let refusal = tooling::failed(
                    "not_approved",
                    "this call is not the call that was approved",
                );
                let from = [StepState::Approved, StepState::Started];
                steps::advance(
                    &mut tx,
                    run.id,
                    step.id,
                    &from,
                    StepState::Rejected,
                    Some(refusal),
                )
                .await?
            } else {
                let started = if step.state == StepState::Approved {
                    let from = [StepState::Approved];
                    steps::advance(&mut tx, run.id, step.id, &from, StepState::Started, None)
                        .await?
                } else {
                    None
                };
                tx.commit().await?;
                if let Some(view) = started {
                    known.record(view);
                }
                let workspace = known.state.workspace;
                run.known = Some(known);
                return run_tool(worker, run, workspace, step.id, tool, &arguments).await;
            }
        }
        StepState::Finished | StepState::Rejected => None,
    };
    tx.commit().await?;
    if let Some(view) = moved {
        known.record(view);
    }
    run.known = Some(known);
    Ok(Advanced::Next)
}

/// Runs a started tool call and records its result.
async fn run_tool(
    worker: &Worker,
    run: &mut HeldRun,
    workspace: Option<uuid::Uuid>,
    step: uuid::Uuid,
    tool: &str,
    arguments: &Value,
) -> Result<Advanced, AgentError> {
    let started = std::time::Instant::now();
    let result = tooling::run(worker, run, workspace, tool, arguments).await;
    run.waited += started.elapsed();
    if run.stop.is_cancelled() && result["code"] == "cancelled" {
        // Letting go (shutdown, lease lost) killed the call: it stays `started` for whoever
        // takes the run next. A call that finished first is recorded below (the fence refuses
        // it if the lease is gone).
        return Ok(Advanced::Parked);
    }
    let Some(mut known) = run.known.take() else {
        return Err(AgentError::NotFound("run"));
    };
    let mut tx = worker.db.begin(run.tenant).await?;
    if lease::fence(&mut tx, run.id, &worker.id).await?.is_none() {
        return Ok(Advanced::LeaseLost);
    }
    let from = [StepState::Started];
    let finished = steps::advance(
        &mut tx,
        run.id,
        step,
        &from,
        StepState::Finished,
        Some(result),
    )
    .await?;
    tx.commit().await?;
    if let Some(view) = finished {
        known.record(view);
    }
    run.known = Some(known);
    Ok(Advanced::Next)
}

/// Whether a person approved exactly this call (this step, this hash).
async fn approved_exactly(
    tx: &mut TenantTx,
    step: uuid::Uuid,
    hash: &str,
) -> Result<bool, AgentError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM approvals
                           WHERE step_id = $1 AND call_hash = $2 AND status = 'approved') AS "approved!""#,
        step,
        hash
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// A model call through the gateway, and what its answer means for the run.
async fn model_step(worker: &Worker, run: &mut HeldRun) -> Result<Advanced, AgentError> {
    let Some(known) = run.known.as_ref() else {
        return Err(AgentError::NotFound("run"));
    };
    let state = &known.state;
    let wait = team_limit::wait(
        &mut worker.redis(),
        worker.prefix(),
        run.tenant,
        &state.team,
        worker.config.team_rpm,
    )
    .await;
    if !wait.is_zero() {
        metrics::model_call_limited();
        tokio::select! {
            () = run.halt.cancelled() => {}
            () = tokio::time::sleep(wait.min(Duration::from_secs(5))) => {}
        }
        return Ok(Advanced::Next);
    }
    let messages = conversation::messages(&state.instructions, &state.input, &known.steps);
    let tools = worker.tools.schemas(&state.tools);
    let started = std::time::Instant::now();
    let deadline =
        tokio::time::Instant::now() + (state.deadline - Utc::now()).to_std().unwrap_or_default();
    let called = tokio::select! {
        () = run.halt.cancelled() => return Ok(Advanced::Next),
        // The next step ends the run `timed_out`.
        () = tokio::time::sleep_until(deadline) => return Ok(Advanced::Next),
        called = worker.model.call(&run.key, run.id, &state.model, &messages, &tools) => called,
    };
    run.waited += started.elapsed();
    let mut tx = match open(worker, run).await? {
        Ok(tx) => tx,
        Err(instead) => return Ok(instead),
    };
    let Some(mut known) = run.known.take() else {
        return Err(AgentError::NotFound("run"));
    };
    metrics::model_call(matches!(called, Called::RateLimited(_)));
    let advanced = match called {
        Called::Answer(completion) => {
            run.model_failures = 0;
            count_iteration(&mut tx, run.id).await?;
            known.state.iterations += 1;
            let state = &known.state;
            match conversation::read_reply(&completion) {
                Some(Reply::Tools { message, calls }) => {
                    let mut new = vec![NewStep::Model { message: &message }];
                    for call in &calls {
                        let allowed = state.tools.iter().any(|t| t == &call.tool);
                        let needs_approval = state.approval_tools.iter().any(|t| t == &call.tool);
                        let (step_state, result) = if !allowed {
                            let error = tooling::failed(
                                "tool_not_allowed",
                                format!("this agent may not use the tool {:?}", call.tool),
                            );
                            (StepState::Finished, Some(error))
                        } else if needs_approval {
                            (StepState::Proposed, None)
                        } else {
                            (StepState::Approved, None)
                        };
                        new.push(NewStep::Tool {
                            tool: &call.tool,
                            arguments: &call.arguments,
                            tool_call_id: &call.id,
                            state: step_state,
                            result,
                        });
                    }
                    let views = steps::append_all(&mut tx, run.id, &new).await?;
                    tx.commit().await?;
                    known.steps.extend(views);
                    run.known = Some(known);
                    return Ok(Advanced::Next);
                }
                Some(Reply::Final { message, text }) => {
                    steps::append(&mut tx, run.id, NewStep::Model { message: &message }).await?;
                    let output = json!({"text": text});
                    runs::finish(
                        &mut tx,
                        run.id,
                        RunStatus::Succeeded,
                        Some(output),
                        None,
                        None,
                    )
                    .await?;
                    Advanced::Ended
                }
                None => {
                    let message = "the model's answer had no message".to_owned();
                    runs::end_badly(&mut tx, run.id, RunStatus::Failed, "model_error", message)
                        .await?;
                    Advanced::Ended
                }
            }
        }
        Called::RunBudgetExhausted => {
            let request = Request::Budget {
                budget_micros: known.state.budget_micros,
            };
            approvals::request(&mut tx, run.id, request, worker.approval_ttl_seconds()).await?;
            Advanced::Parked
        }
        Called::OtherBudgetExhausted(message) => {
            runs::end_badly(
                &mut tx,
                run.id,
                RunStatus::Failed,
                "budget_exceeded",
                message,
            )
            .await?;
            Advanced::Ended
        }
        Called::RateLimited(wait) => {
            tx.commit().await?;
            run.known = Some(known);
            tokio::select! {
                () = run.halt.cancelled() => {}
                () = tokio::time::sleep(wait.min(Duration::from_secs(10))) => {}
            }
            return Ok(Advanced::Next);
        }
        Called::Failed(status, message) => {
            run.model_failures += 1;
            if run.model_failures < 3 {
                tx.commit().await?;
                run.known = Some(known);
                tracing::warn!(run = %run.id, status, %message, "a model call failed; trying again");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(run.model_failures)))
                    .await;
                return Ok(Advanced::Next);
            }
            let message = format!("the model call failed ({status}): {message}");
            runs::end_badly(&mut tx, run.id, RunStatus::Failed, "model_error", message).await?;
            Advanced::Ended
        }
    };
    tx.commit().await?;
    Ok(advanced)
}

async fn count_iteration(tx: &mut TenantTx, run: RunId) -> Result<(), AgentError> {
    sqlx::query!(
        "UPDATE agent_runs SET iterations = iterations + 1, updated_at = now() WHERE id = $1",
        run.as_uuid()
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
