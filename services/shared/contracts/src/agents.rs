//! Agent runs across services: the job that asks a worker to start or resume a run (api and the
//! worker's own sweeper → agent-worker, always through the outbox), and the progress events a
//! run produces (agent-worker → the realtime fan-out).
//!
//! A job is only a wake-up: the run's state is in Postgres, and a worker that receives a job
//! for a run that another worker holds, or that has nothing to do, acknowledges it and moves
//! on. Jobs may be duplicated or arrive late; they are never the only record of anything.

use chrono::{DateTime, Utc};
use sb_kernel::RunId;
use serde::{Deserialize, Serialize};

use crate::Event;

/// Start or resume this run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentJob {
    pub run_id: RunId,
}

impl Event for AgentJob {
    const TYPE: &'static str = "agent.job";
    const STREAM: &'static str = crate::streams::AGENT_JOBS;
}

/// What a run event says.
pub mod kinds {
    /// The run's status changed (`data.status`, and `data.error_code` when it ended badly).
    pub const RUN_STATUS: &str = "run.status";
    /// A step was written or moved (`data` is the step as `GET /runs/{id}/steps` shows it).
    pub const RUN_STEP: &str = "run.step";
    /// A person is asked to decide (`data` is the approval).
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    /// A person decided (`data` is the approval with its decision).
    pub const APPROVAL_DECIDED: &str = "approval.decided";
}

/// One durable event of a run, as recorded in `agent_events` (`seq` is its position in the
/// run, from 1, with no gaps) and then published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub run_id: RunId,
    pub seq: i32,
    /// One of [`kinds`].
    pub kind: String,
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

impl Event for RunEvent {
    const TYPE: &'static str = "agent.event";
    const STREAM: &'static str = crate::streams::AGENT_EVENTS;
}
