//! The agent-worker's logic, no HTTP: the worker and its runs' leases, one step of a run, the
//! conversation and the gateway client, the tools' bridge, and the job consumer.

pub mod advance;
pub mod conversation;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod model;
pub mod retention;
pub mod team_limit;
pub mod tooling;
pub mod worker;
