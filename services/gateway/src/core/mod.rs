//! The gateway's logic, free of HTTP handler types.

pub mod providers;
