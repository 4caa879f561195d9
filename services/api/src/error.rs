//! REST errors: `application/problem+json` (RFC 9457) with a stable `code`, and for validation
//! the offending fields. A 500 says nothing about its cause; the log does.
//!
//! `ApiError` is the service's one boundary error, and `core` returns it too: it lives here, at
//! the crate root beside `core` rather than in the HTTP layer (`extract`, `routes`), so `core`
//! depends on no extractor, route or axum type. Its status is an `http::StatusCode` (the status
//! *is* the error's meaning for REST and, through `extensions.status`, for GraphQL); turning it
//! into a response (`IntoResponse`) is the only axum-specific part.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One field that failed validation.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the request, such as `name` or `tenant.slug`.
    pub field: String,
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `about:blank`: the `code` carries the meaning.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The HTTP status's reason phrase.
    pub title: String,
    pub status: u16,
    /// Stable and machine-readable, such as `validation_failed` or `not_found`.
    pub code: &'static str,
    /// What happened and how to fix it.
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait, on 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// A 422 naming one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        Self {
            detail: format!("invalid field(s): {}", names.join(", ")),
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                String::new(),
            )
        }
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::forbidden_because("forbidden", detail)
    }

    /// A 403 with its own code, such as `tenant_suspended`.
    pub fn forbidden_because(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// Also the answer for another tenant's resources, so their existence is not revealed.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}, or it is not yours to see"),
        )
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn too_many(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many attempts; try again in {retry_after} s"),
            )
        }
    }

    /// 503 with `Retry-After`: the api is at a bound of its own (not a dependency's), and the
    /// same request may succeed in `retry_after` seconds.
    pub fn busy(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the api is busy; try again in {retry_after} s"),
            )
        }
    }

    /// A fault of ours: logged in full, answered without detail.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; the request id identifies it in the logs",
        )
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "a dependency is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency is unavailable; try again shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            code: self.code,
            detail: self.detail,
            errors: self.errors,
            retry_after: self.retry_after,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<sb_db::DbError> for ApiError {
    fn from(e: sb_db::DbError) -> Self {
        match e {
            sb_db::DbError::Query(q) => q.into(),
            other => Self::unavailable(other),
        }
    }
}

impl From<sb_agents::AgentError> for ApiError {
    fn from(e: sb_agents::AgentError) -> Self {
        use sb_agents::AgentError;
        match e {
            AgentError::NotFound(what) => Self::not_found(what),
            AgentError::Invalid { field, message } => Self::invalid(field, message),
            AgentError::RunEnded => Self::conflict("run_ended", "the run has already ended"),
            AgentError::AlreadyDecided(approval) => Self::conflict(
                "already_decided",
                format!("this approval is already {}", approval.status),
            ),
            AgentError::Postgres(e) => e.into(),
            AgentError::Db(e) => e.into(),
            AgentError::Bus(e) => Self::internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::conflict(
                "already_exists",
                "a resource with that name or value already exists",
            ),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::invalid(
                "reference",
                "refers to something that does not exist in this tenant",
            ),
            sqlx::Error::Database(db) if db.is_check_violation() => Self::invalid(
                db.constraint().unwrap_or("body"),
                "a value is out of its allowed range",
            ),
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::unavailable(e)
            }
            _ => Self::internal(e),
        }
    }
}

/// Gives a constraint violation its own answer, where the generic one (`already_exists`,
/// `reference`) would not tell the caller what to fix.
pub trait OnConstraint<T> {
    /// A unique violation becomes `error()`; any other failure maps as usual.
    fn on_unique(self, error: impl FnOnce() -> ApiError) -> ApiResult<T>;
    /// A foreign key violation becomes `error()`; any other failure maps as usual.
    fn on_foreign_key(self, error: impl FnOnce() -> ApiError) -> ApiResult<T>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_unique(self, error: impl FnOnce() -> ApiError) -> ApiResult<T> {
        self.map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => error(),
            other => other.into(),
        })
    }

    fn on_foreign_key(self, error: impl FnOnce() -> ApiError) -> ApiResult<T> {
        self.map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => error(),
            other => other.into(),
        })
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        Self::unavailable(e)
    }
}
