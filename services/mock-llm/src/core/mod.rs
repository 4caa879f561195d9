//! The mock's behaviour, independent of any wire format: what it answers (the canned sentence,
//! or a scripted agent's next turn), how many tokens that is, and which faults to inject.

pub mod agent;
pub mod completion;
pub mod embedding;
pub mod faults;
pub mod tokens;
