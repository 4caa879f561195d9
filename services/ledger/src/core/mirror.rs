//! The Redis mirror of each budget's spend; the writer is shared with the gateway, which
//! rebuilds a missing mirror (`sb_budget::write_mirror`).

pub use sb_budget::{Mirrored, write_mirror as write};
