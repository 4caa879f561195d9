//! Credentials: Argon2id password hashes and gateway API keys. (Sessions, JWTs and the
//! extractors that read them are the api's: `services/api/src/core/tokens.rs`, `extract.rs`.)

pub mod api_key;
pub mod password;
