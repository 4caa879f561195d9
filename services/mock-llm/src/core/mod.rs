//! The mock's behaviour, independent of any wire format: what it answers, how many tokens that
//! is, and which faults to inject.

pub mod completion;
pub mod embedding;
pub mod faults;
pub mod tokens;
