//! The states of an agent run, its steps and its approvals, with their stored spellings (the
//! tables check the same spellings with constraints). The api, the agent-worker and the
//! realtime fan-out agree through these.

use serde::{Deserialize, Serialize};

use crate::spelling::spelled;

/// Where a run is: `queued → running → waiting_approval → running → succeeded | failed |
/// cancelled | timed_out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    WaitingApproval,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::WaitingApproval,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
    ];

    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingApproval => "waiting_approval",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }

    /// A run in a terminal state never changes again.
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::TimedOut
        )
    }
}

/// What a step of the log records: a model call or a tool call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Model,
    Tool,
}

impl StepKind {
    pub const ALL: [StepKind; 2] = [Self::Model, Self::Tool];

    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Tool => "tool",
        }
    }
}

/// A tool call's way through the log: `proposed → approved → started → finished`, or
/// `rejected`; `uncertain` when a crash left it started and not finished and it may not be
/// repeated without a person's say. A model step is recorded `finished`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Proposed,
    Approved,
    Started,
    Finished,
    Rejected,
    Uncertain,
}

impl StepState {
    pub const ALL: [StepState; 6] = [
        Self::Proposed,
        Self::Approved,
        Self::Started,
        Self::Finished,
        Self::Rejected,
        Self::Uncertain,
    ];

    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Approved => "approved",
            Self::Started => "started",
            Self::Finished => "finished",
            Self::Rejected => "rejected",
            Self::Uncertain => "uncertain",
        }
    }
}

/// What an approval asks a person to decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// One exact tool call (tool and arguments, bound by their hash).
    Tool,
    /// The run's budget ran out: approving raises it.
    Budget,
}

impl ApprovalKind {
    pub const ALL: [ApprovalKind; 2] = [Self::Tool, Self::Budget];

    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Budget => "budget",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 4] =
        [Self::Pending, Self::Approved, Self::Rejected, Self::Expired];

    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

spelled!(
    RunStatus,
    UnknownRunStatus,
    "queued, running, waiting_approval, succeeded, failed, cancelled or timed_out"
);
spelled!(StepKind, UnknownStepKind, "model or tool");
spelled!(
    StepState,
    UnknownStepState,
    "proposed, approved, started, finished, rejected or uncertain"
);
spelled!(ApprovalKind, UnknownApprovalKind, "tool or budget");
spelled!(
    ApprovalStatus,
    UnknownApprovalStatus,
    "pending, approved, rejected or expired"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_stored_spelling() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        for s in StepState::ALL {
            assert_eq!(s.as_str().parse::<StepState>().unwrap(), s);
        }
        for s in ApprovalStatus::ALL {
            assert_eq!(s.as_str().parse::<ApprovalStatus>().unwrap(), s);
        }
        assert!("paused".parse::<RunStatus>().is_err());
        assert!(RunStatus::TimedOut.is_terminal());
        assert!(!RunStatus::WaitingApproval.is_terminal());
    }
}
