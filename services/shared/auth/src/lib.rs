//! Credentials: Argon2id password hashes, gateway API keys, and the guard that keeps unknown
//! keys away from the database. (Sessions, JWTs and the
//! extractors that read them are the api's: `services/api/src/core/tokens.rs`, `extract.rs`.)

pub mod api_key;
pub mod password;
pub mod unknown_keys;
