//! The agent-worker's integration tests, one binary (`cargo test -p sb-agent-worker --test it`).
//! The tools and sandbox tests are written as attacks: each escape is refused or contained;
//! the runs' tests drive whole agent runs through a real gateway, ledger and mock-llm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod approval_binding;
mod command_policy;
mod concurrency;
mod crash;
mod file_tools;
mod limits;
mod runs;
mod sandbox_escapes;
mod support;
mod take_race;
mod team_limit;
