//! Credentials: Argon2id password hashes and gateway API keys.
//!
//! Later issues add JWT sessions and the axum extractors here.

pub mod api_key;
pub mod password;
