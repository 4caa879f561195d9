//! Accounts: users are global (one login, many tenants). A module per concern:
//!
//! - `signup`: creating an account, optionally with its first tenant;
//! - `login`: signing in (with TOTP when enabled), refreshing and ending sessions;
//! - `email`: verifying the e-mail address;
//! - `recovery`: the forgotten-password link and the reset;
//! - `totp`: enrolling and checking the second factor;
//! - `password`: Argon2id hashing off the async threads, and asking for the password again;
//! - `links`: the signed one-use links the e-mails carry.

mod email;
mod links;
mod login;
mod password;
mod recovery;
mod signup;
mod totp;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use email::{TokenRequest, resend_verification, verify_email};
pub use login::{LoginRequest, LogoutRequest, RefreshRequest, login, logout, refresh};
pub use password::{ConfirmPassword, confirm_password};
pub use recovery::{EmailRequest, ResetRequest, forgot_password, reset_password};
pub use signup::{SignupRequest, SignupResponse, signup};
pub use totp::{TotpCode, TotpEnrollment, totp_enroll, totp_verify};

#[derive(Clone, Debug, Serialize, ToSchema, async_graphql::SimpleObject)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub is_platform_admin: bool,
    pub created_at: DateTime<Utc>,
}
