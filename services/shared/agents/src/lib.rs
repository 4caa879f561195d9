//! Agent runs as the api and the agent-worker both see them: the rows (runs, steps,
//! approvals) and the few transactions that both sides must write the same way — appending a
//! run event with its sequence number and its outbox row, and deciding an approval.
//!
//! Everything here works inside a [`sb_db::TenantTx`]: row-level security is the boundary.
//! docs/architecture.md ("Agents") states the invariants.

pub mod approvals;
mod error;
pub mod events;
pub mod feed;
pub mod health;
pub mod runs;
pub mod steps;

pub use error::AgentError;

/// The tools an agent may be given (the worker's registry has one of each; a test there keeps
/// the two lists equal).
pub const TOOL_NAMES: &[&str] = &[
    "list_files",
    "read_file",
    "write_file",
    "append_file",
    "delete_file",
    "bash",
];
