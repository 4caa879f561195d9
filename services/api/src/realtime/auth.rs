//! The handshake: who is connecting, checked in the connect middleware before the socket joins
//! anything. Credentials come only in the `auth` payload (`{token}` for people, `{api_key}`
//! for programs), never in the query string, where proxies and logs would keep them. A
//! refusal is a `connect_error` whose message is `code: what to do`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sb_kernel::{RunId, TenantId, UserId};
use serde::Deserialize;
use socketioxide::extract::{SocketRef, State, TryData};

use super::Adapter;
use super::events::metrics;
use crate::core::key_auth::{self, KeyPrincipal};
use crate::core::me;
use crate::core::tokens::Claims;
use crate::error::ApiError;
use crate::extract;
use crate::state::ApiState;

/// Who a socket belongs to.
#[derive(Clone, Debug)]
pub enum Principal {
    User { user: UserId, claims: Box<Claims> },
    Key(KeyPrincipal),
}

/// A connected socket's identity and its run subscriptions (a socket extension).
pub struct Session {
    pub principal: Principal,
    /// The tenants whose rooms it is in: the user's memberships at the handshake (less those
    /// that ended since, `realtime::membership`), or the key's tenant.
    tenants: Mutex<Vec<TenantId>>,
    pub runs: Mutex<HashMap<RunId, Arc<super::feed::Cursor>>>,
}

impl Session {
    /// When the credential stops working, if it ever does.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match &self.principal {
            Principal::User { claims, .. } => DateTime::from_timestamp(claims.exp, 0),
            Principal::Key(key) => key.expires_at,
        }
    }

    pub fn new(principal: Principal, tenants: Vec<TenantId>) -> Self {
        Self {
            principal,
            tenants: Mutex::new(tenants),
            runs: Mutex::default(),
        }
    }

    pub fn tenants(&self) -> Vec<TenantId> {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn has_tenant(&self, tenant: TenantId) -> bool {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&tenant)
    }

    /// The socket's access to `tenant` ended.
    pub fn drop_tenant(&self, tenant: TenantId) {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|t| *t != tenant);
    }

    pub fn cursor(&self, run: RunId) -> Option<Arc<super::feed::Cursor>> {
        self.lock().get(&run).cloned()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Arc<super::feed::Cursor>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A refused handshake: the code (a bounded metric label) and what to do.
#[derive(Debug)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl Refused {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        metrics::refused(code);
        Self {
            code,
            message: message.into(),
        }
    }

    fn from_api(e: ApiError) -> Self {
        let code = match e.code {
            "token_expired" => "token_expired",
            "token_revoked" => "token_revoked",
            "invalid_token" => "invalid_token",
            _ => "unavailable",
        };
        Self::new(code, e.detail)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Handshake {
    token: Option<String>,
    api_key: Option<String>,
}

/// The connect middleware: verifies the credential and stores the socket's [`Session`].
pub async fn authenticate(
    socket: SocketRef<Adapter>,
    TryData(auth): TryData<serde_json::Value>,
    State(state): State<ApiState>,
) -> Result<(), Refused> {
    let query = socket.req_parts().uri.query().unwrap_or("");
    if query
        .split('&')
        .any(|p| p.starts_with("token=") || p.starts_with("api_key="))
    {
        return Err(Refused::new(
            "credentials_in_query",
            "send credentials in the handshake's auth payload, never in the URL",
        ));
    }
    let handshake = auth
        .ok()
        .and_then(|v| serde_json::from_value::<Handshake>(v).ok());
    let session = match handshake {
        Some(Handshake {
            token: Some(token),
            api_key: None,
        }) => user(&state, token.trim()).await?,
        Some(Handshake {
            token: None,
            api_key: Some(secret),
        }) => {
            let client = socket
                .req_parts()
                .extensions
                .get::<sb_runtime::ClientIp>()
                .map(|c| c.0);
            key(&state, secret.trim(), client).await?
        }
        _ => {
            return Err(Refused::new(
                "missing_credentials",
                "connect with auth {token: <access token>} or {api_key: <sb_live_… key>}",
            ));
        }
    };
    socket.extensions.insert(Arc::new(session));
    Ok(())
}

async fn user(state: &ApiState, token: &str) -> Result<Session, Refused> {
    let session = extract::authenticate(state, token)
        .await
        .map_err(Refused::from_api)?;
    let tenants = me::memberships(state, session.user)
        .await
        .map_err(Refused::from_api)?
        .into_iter()
        .map(|m| TenantId::from_uuid(m.tenant_id))
        .collect();
    Ok(Session::new(
        Principal::User {
            user: session.user,
            claims: Box::new(session.claims),
        },
        tenants,
    ))
}

async fn key(
    state: &ApiState,
    secret: &str,
    client: Option<std::net::IpAddr>,
) -> Result<Session, Refused> {
    match key_auth::authenticate(state, secret, client).await {
        Ok(Ok(key)) => Ok(Session::new(Principal::Key(key), vec![key.tenant])),
        Ok(Err(refusal)) => Err(Refused::new(refusal.code(), refusal.message())),
        Err(e) => Err(Refused::from_api(e)),
    }
}
