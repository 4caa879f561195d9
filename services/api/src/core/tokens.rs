//! Signed tokens: JWT access tokens (HS256, pinned), and the single-purpose tokens that e-mail
//! links carry (password reset, e-mail verification). Each purpose has its own audience, so a
//! token made for one can never be used as another.
//!
//! Refresh tokens are not JWTs: they are random, stored hashed and rotated (see `sessions`).

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sb_kernel::UserId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ISSUER: &str = "switchboard";

/// What a token is for; its audience claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Access,
    PasswordReset,
    EmailVerify,
}

impl Purpose {
    fn audience(self) -> &'static str {
        match self {
            Purpose::Access => "switchboard-api",
            Purpose::PasswordReset => "switchboard-password-reset",
            Purpose::EmailVerify => "switchboard-email-verify",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: UserId,
    pub iat: i64,
    pub exp: i64,
    /// The token's id: what logout puts on the deny-list.
    pub jti: Uuid,
    /// For one-use links, a fingerprint of the state the link changes (the password hash, the
    /// e-mail address), so the link stops working once used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For access tokens, the session: the family of the refresh token issued with it. Logout
    /// and a refresh token's reuse end the session by it (`sessions::is_revoked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &SecretString, access_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            access_ttl,
        }
    }

    pub fn issue(
        &self,
        purpose: Purpose,
        user: UserId,
        ttl: Duration,
        state: Option<String>,
    ) -> Result<(String, Claims), TokenError> {
        self.sign(purpose, user, ttl, state, None)
    }

    /// An access token of the session `sid` (a refresh token family).
    pub fn issue_access(&self, user: UserId, sid: Uuid) -> Result<(String, Claims), TokenError> {
        self.sign(Purpose::Access, user, self.access_ttl, None, Some(sid))
    }

    fn sign(
        &self,
        purpose: Purpose,
        user: UserId,
        ttl: Duration,
        state: Option<String>,
        sid: Option<Uuid>,
    ) -> Result<(String, Claims), TokenError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: purpose.audience().to_owned(),
            sub: user,
            iat: now,
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: Uuid::now_v7(),
            state,
            sid,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok((token, claims))
    }

    /// Checks signature (HS256 only: `none` and every other algorithm are refused), issuer,
    /// audience and expiry.
    pub fn verify(&self, token: &str, purpose: Purpose) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[purpose.audience()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(secret: &str) -> Tokens {
        Tokens::new(&SecretString::from(secret), Duration::from_secs(900))
    }

    #[test]
    fn a_token_verifies_for_its_own_purpose_only() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let user = UserId::new();
        let (token, claims) = t.issue(Purpose::Access, user, t.access_ttl, None).unwrap();
        assert_eq!(t.verify(&token, Purpose::Access).unwrap().jti, claims.jti);
        assert!(t.verify(&token, Purpose::PasswordReset).is_err());
        let other = tokens("another-secret-of-at-least-32-chars!");
        assert!(other.verify(&token, Purpose::Access).is_err());
    }

    #[test]
    fn expired_tokens_say_so() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let mut claims = t
            .issue(Purpose::Access, UserId::new(), t.access_ttl, None)
            .unwrap()
            .1;
        claims.exp = Utc::now().timestamp() - 60;
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap();
        assert!(matches!(
            t.verify(&token, Purpose::Access),
            Err(TokenError::Expired)
        ));
    }
}
