//! The ledger's logic, free of HTTP: recording batches, the price book, the Redis mirror of
//! budget spend, reconciliation and partition maintenance.

pub mod mirror;
pub mod partitions;
pub mod reconcile;
pub mod record;
