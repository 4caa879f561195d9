//! Which windows hold back each account endpoint, and why (docs/security.md, "Account
//! limits").
//!
//! Every endpoint that costs a password hash or sends e-mail is limited per subject (the
//! address or user it targets), per client IP and globally:
//!
//! | endpoint | per subject | per client IP | global |
//! |---|---|---|---|
//! | login (failures only) | 10 / 15 min per address *and* IP; 50 / 15 min per address | 30 / 15 min | 2,000 / 15 min |
//! | signup | 3 / h per address | 10 / h | 1,000 / h |
//! | invitation | 5 / h per invited address | 50 / h | 2,000 / h |
//! | password reset | 3 / h per address | 10 / h | 500 / h |
//! | e-mail resend | 3 / 5 min per user | 10 / 5 min | 500 / 5 min |
//!
//! Logins count failures only, and a victim cannot be locked out by someone typing wrong
//! passwords for them: the tight per-address window is per address *and* client IP, so it
//! stops the guesser's IP only. The looser windows that a distributed guesser could fill (per
//! address across IPs, per IP, global) are waived for a client that has signed in as that
//! address from that IP within 30 days (a marker set on success, which only the password
//! can set): the account's owner, on their usual network, still gets in. Password spraying
//! (one guess at each of many accounts) is bounded per IP and globally.

use std::time::Duration;

use sb_kernel::UserId;
use sha2::{Digest, Sha256};

use super::{Limiter, Mode, Window};
use crate::core::audit::RequestMeta;
use crate::error::{ApiError, ApiResult};

/// How long a successful login vouches for its address and IP.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

const MINUTES_15: u64 = 15 * 60;
const HOUR: u64 = 3600;
const MINUTES_5: u64 = 5 * 60;

/// The client an attempt comes from, as rate limits count it.
pub fn client(meta: &RequestMeta) -> &str {
    meta.limit_key.as_deref().unwrap_or("unknown")
}

/// An address as a window's subject: a digest, so that Redis holds no addresses and a key's
/// length does not depend on the input.
fn address(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn too_many(seconds: u64) -> ApiError {
    ApiError::too_many(seconds)
}

impl Limiter {
    /// Before a login's password is checked: 429 when a window is full for this client.
    pub async fn login_allowed(&self, email: &str, meta: &RequestMeta) -> ApiResult<()> {
        let (windows, known) = login_windows(email, meta);
        self.attempt(Mode::Peek, Some(&known), &windows)
            .await
            .map_err(too_many)
    }

    /// A login failed (wrong password or no such account): it counts in every window.
    pub async fn login_failed(&self, email: &str, meta: &RequestMeta) {
        let (windows, known) = login_windows(email, meta);
        // `Add` is never refused.
        let _ = self.attempt(Mode::Add, Some(&known), &windows).await;
    }

    /// A login succeeded: this address from this client is known for [`KNOWN_FOR`].
    pub async fn login_succeeded(&self, email: &str, meta: &RequestMeta) {
        let (_, known) = login_windows(email, meta);
        self.mark_known(&known, KNOWN_FOR).await;
    }

    /// A signup for `email` (each one counts).
    pub async fn signup(&self, email: &str, meta: &RequestMeta) -> ApiResult<()> {
        self.take(&[
            Window::new("signup-addr", &address(email), 3, HOUR),
            Window::new("signup-ip", client(meta), 10, HOUR),
            Window::new("signup-all", "-", 1_000, HOUR),
        ])
        .await
    }

    /// An invitation mailed to `email` (each one counts).
    pub async fn invitation(&self, email: &str, meta: &RequestMeta) -> ApiResult<()> {
        self.take(&[
            Window::new("invite-addr", &address(email), 5, HOUR),
            Window::new("invite-ip", client(meta), 50, HOUR),
            Window::new("invite-all", "-", 2_000, HOUR),
        ])
        .await
    }

    /// A password reset link asked for `email` (each one counts).
    pub async fn password_reset(&self, email: &str, meta: &RequestMeta) -> ApiResult<()> {
        self.take(&[
            Window::new("reset-addr", &address(email), 3, HOUR),
            Window::new("reset-ip", client(meta), 10, HOUR),
            Window::new("reset-all", "-", 500, HOUR),
        ])
        .await
    }

    /// The verification e-mail sent again to `user` (each one counts).
    pub async fn email_resend(&self, user: UserId, meta: &RequestMeta) -> ApiResult<()> {
        self.take(&[
            Window::new("resend-user", &user.to_string(), 3, MINUTES_5),
            Window::new("resend-ip", client(meta), 10, MINUTES_5),
            Window::new("resend-all", "-", 500, MINUTES_5),
        ])
        .await
    }

    async fn take(&self, windows: &[Window]) -> ApiResult<()> {
        self.attempt(Mode::Take, None, windows)
            .await
            .map_err(too_many)
    }
}

/// A login's windows, and the marker of a client known to this address.
fn login_windows(email: &str, meta: &RequestMeta) -> (Vec<Window>, String) {
    let address = address(email);
    let ip = client(meta);
    let pair = format!("{address}:{ip}");
    let windows = vec![
        Window::new("login-addr-ip", &pair, 10, MINUTES_15),
        Window::new("login-addr", &address, 50, MINUTES_15).waived_when_known(),
        Window::new("login-ip", ip, 30, MINUTES_15).waived_when_known(),
        Window::new("login-all", "-", 2_000, MINUTES_15).waived_when_known(),
    ];
    (windows, format!("login:{pair}"))
}
