//! The extractors every handler uses. Authentication and role checks live here and nowhere
//! else: a handler states what it needs in its signature (`Tenant<Admin>`, `PlatformAdmin`)
//! and never checks a role itself.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header;
use axum::http::request::Parts;
use sb_db::TenantTx;
use sb_kernel::{Role, TenantId, UserId};
use sb_runtime::ClientIp;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::core::access::{self, Access};
use crate::core::audit::{self, Actor, Entry, RequestMeta};
use crate::core::invalidation::{self, Stale};
use crate::core::sessions;
use crate::core::tokens::{Claims, Purpose, TokenError};
use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// A JSON body: 415 without a JSON content type, 413 above the body limit, 400 when it is not
/// JSON, 422 naming the field when it does not fit the type.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    e.status(),
                    "body_too_large",
                    format!(
                        "the body is larger than the api accepts ({} bytes)",
                        state.config.max_body_bytes
                    ),
                )
            } else {
                ApiError::bad_request("unreadable_body", e.body_text())
            }
        })?;
        decode(&bytes).map(Json)
    }
}

/// Parses JSON, naming the field that does not fit (or holds a NUL, which Postgres cannot
/// store: `crate::nul`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::nul::check_json(bytes)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        } else {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::invalid(&field, strip_position(&inner.to_string()))
        }
    })
}

fn strip_position(message: &str) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_owned()
}

/// Where the request came from, for the audit log.
impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(500).collect::<String>())
        };
        Ok(Self {
            // Set by `sb_runtime::client_ip::layer` from the TCP peer, or from
            // X-Forwarded-For when the peer is a trusted proxy; never from the headers alone.
            ip: parts.extensions.get::<ClientIp>().map(|c| c.0.to_string()),
            limit_key: parts.extensions.get::<ClientIp>().map(ClientIp::limit_key),
            user_agent: header("user-agent"),
            request_id: header("x-request-id"),
        })
    }
}

/// A signed-in user: a valid, unrevoked access token in `Authorization: Bearer …`.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: UserId,
    pub claims: Claims,
    pub meta: RequestMeta,
}

impl Session {
    pub fn actor(&self) -> Actor<'_> {
        Actor::anonymous(&self.meta).as_user(self.user)
    }
}

impl FromRequestParts<ApiState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        if let Some(session) = parts.extensions.get::<Session>() {
            return Ok(session.clone());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "unauthenticated",
                    "sign in and send the access token as `Authorization: Bearer <token>`",
                )
            })?;
        let session = authenticate(state, token.trim()).await?;
        let meta = RequestMeta::from_request_parts(parts, state)
            .await
            .unwrap_or_default();
        let session = Session { meta, ..session };
        parts.extensions.insert(session.clone());
        Ok(session)
    }
}

/// Verifies an access token (REST and GraphQL alike).
pub async fn authenticate(state: &ApiState, token: &str) -> Result<Session, ApiError> {
    let claims = state
        .tokens
        .verify(token, Purpose::Access)
        .map_err(|e| match e {
            TokenError::Expired => ApiError::unauthorized(
                "token_expired",
                "the access token has expired; get a new one from /api/v1/auth/refresh",
            ),
            TokenError::Invalid => {
                ApiError::unauthorized("invalid_token", "the access token is not valid")
            }
        })?;
    if sessions::is_revoked(state, &claims).await? {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "the access token has been revoked; sign in again",
        ));
    }
    Ok(Session {
        user: claims.sub,
        claims,
        meta: RequestMeta::default(),
    })
}

/// The least role a route needs, as a type: `Tenant<Admin>`.
pub trait MinRole: Send + Sync {
    const ROLE: Role;
}

pub struct Viewer;
pub struct Member;
pub struct Admin;
pub struct Owner;

impl MinRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for Member {
    const ROLE: Role = Role::Member;
}
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}
impl MinRole for Owner {
    const ROLE: Role = Role::Owner;
}

/// A member of the tenant in the path (`{tenant_id}`) with at least role `R`, and a
/// transaction in that tenant's context for the handler to do its work in. A user who is not a
/// member gets 404, as if the tenant did not exist.
///
/// A handler that changes something ends with `finish` (or `finish_and_invalidate`): the audit
/// row, the commit and the gateways' invalidation in that order, written once here. A read
/// simply drops the transaction.
pub struct Tenant<R: MinRole = Viewer> {
    pub tx: TenantTx,
    pub access: Access,
    pub session: Session,
    state: ApiState,
    _role: PhantomData<R>,
}

impl<R: MinRole> Tenant<R> {
    pub fn id(&self) -> TenantId {
        self.tx.tenant()
    }

    /// Records `entry` in the request's transaction, as its actor, and commits.
    pub async fn finish(self, entry: Entry<'_>) -> ApiResult<()> {
        audit::commit(self.tx, self.session.actor(), entry).await
    }

    /// `finish`, then tells the gateways what the change made stale.
    pub async fn finish_and_invalidate(self, entry: Entry<'_>, stale: Stale) -> ApiResult<()> {
        let (tenant, state) = (self.id(), self.state.clone());
        self.finish(entry).await?;
        invalidation::publish(&state, tenant, stale).await;
        Ok(())
    }
}

impl<R: MinRole> FromRequestParts<ApiState> for Tenant<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("tenant"))?;
        let tenant = params
            .iter()
            .find(|(name, _)| *name == "tenant_id")
            .and_then(|(_, value)| Uuid::parse_str(value).ok())
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        let write = !parts.method.is_safe();
        let (tx, access) = access::enter(
            state,
            session.user,
            TenantId::from_uuid(tenant),
            R::ROLE,
            write,
        )
        .await?;
        sb_telemetry::record_tenant(&tenant);
        Ok(Self {
            tx,
            access,
            session,
            state: state.clone(),
            _role: PhantomData,
        })
    }
}

/// The resource id in the path (its last parameter other than `tenant_id`), as a typed id
/// (`Id<ApiKeyId>`) or a plain `Uuid`; a malformed id is answered 404 like an unknown one.
pub struct Id<T = Uuid>(pub T);

impl<S: Send + Sync, T: From<Uuid>> FromRequestParts<S> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("resource"))?;
        params
            .iter()
            .filter(|(name, _)| *name != "tenant_id")
            .last()
            .and_then(|(_, value)| Uuid::parse_str(value).ok())
            .map(|id| Id(T::from(id)))
            .ok_or_else(|| ApiError::not_found("resource"))
    }
}

/// A platform operator (`users.is_platform_admin`).
pub struct PlatformAdmin(pub Session);

impl FromRequestParts<ApiState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state).await?;
        access::require_platform_admin(state, session.user).await?;
        Ok(Self(session))
    }
}

/// Query parameters, with a 422 problem naming what is wrong when they do not parse.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        crate::nul::check_query(parts.uri.query())?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                ApiError::invalid(
                    "query",
                    e.body_text()
                        .trim_start_matches("Failed to deserialize query string: ")
                        .to_owned(),
                )
            })
    }
}

/// Path parameters other than ids (`{team}`), with a 422 naming the one that holds a NUL
/// (`crate::nul`) and 404 when they do not parse.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("resource"))?;
        crate::nul::check_path(params.iter())?;
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::not_found("resource"))
    }
}
