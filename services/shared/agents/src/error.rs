//! Errors of the agent domain, named for what failed.

use crate::approvals::ApprovalView;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no such {0} in this tenant")]
    NotFound(&'static str),
    /// Somebody decided first (or the approval expired): the approval as it stands.
    #[error("this approval was already decided")]
    AlreadyDecided(Box<ApprovalView>),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the run has already ended")]
    RunEnded,
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error(transparent)]
    Db(#[from] sb_db::DbError),
    #[error(transparent)]
    Bus(#[from] sb_bus::BusError),
}
