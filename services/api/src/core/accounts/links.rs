//! The signed one-use links the e-mails carry (verification, password reset). A link
//! is a JWT for its own purpose, holding a fingerprint of the state it changes (the address, the
//! password hash), so it stops working once that state has changed.

use std::time::Duration;

use sb_kernel::UserId;
use sha2::{Digest, Sha256};

use crate::core::tokens::{Claims, Purpose, TokenError};
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// Ties a one-use link to the state it changes: after the change, the link stops working.
pub(super) fn fingerprint(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A link to set the password of `user`, whose current hash is `hash` (none for an account
/// that has never had a password).
pub(super) fn password_link(
    state: &ApiState,
    user: UserId,
    hash: Option<&str>,
    ttl: Duration,
) -> ApiResult<String> {
    state
        .tokens
        .issue(
            Purpose::PasswordReset,
            user,
            ttl,
            Some(fingerprint(hash.unwrap_or(""))),
        )
        .map(|(token, _)| token)
        .map_err(ApiError::internal)
}

pub(super) fn bad_link() -> ApiError {
    ApiError::bad_request(
        "invalid_link",
        "the link is not valid or has been used; ask for a new one",
    )
}

/// The claims of a link made for `purpose`, or why it cannot be followed.
pub(super) fn verify_link(state: &ApiState, token: &str, purpose: Purpose) -> ApiResult<Claims> {
    state.tokens.verify(token, purpose).map_err(|e| match e {
        TokenError::Expired => {
            ApiError::bad_request("link_expired", "the link has expired; ask for a new one")
        }
        TokenError::Invalid => bad_link(),
    })
}
