//! Errors in the OpenAI shape (`{"error": {"message", "type", "param", "code"}}`), so the
//! official SDKs raise their own exception types.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::core::admit::Refusal;
use crate::core::policy::Limits;
use crate::core::providers::UpstreamError;

/// Boxed: it travels in every handler's `Result`.
pub struct ApiError(Box<Parts>);

struct Parts {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
    param: Option<&'static str>,
    headers: HeaderMap,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self(Box::new(Parts {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            headers: HeaderMap::new(),
        }))
    }

    /// What the client is told.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message,
        )
        .with_param(param)
    }

    fn with_param(mut self, param: Option<&'static str>) -> Self {
        self.0.param = param;
        self
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            format!("The request body is larger than the gateway accepts ({limit} bytes)."),
        )
    }
}

impl From<UpstreamError> for ApiError {
    /// Every entry failed: the last entry's error, told generically. A provider entry's
    /// address is the tenant's to choose, so what an upstream says about itself (its error
    /// pages, connection errors, server faults) would make the gateway a probe of whatever it
    /// can reach; the details are in the logs (`provider call failed`). Only a provider's own
    /// error message about the request (a 4xx with an OpenAI, Anthropic or Gemini error
    /// object, such as "maximum context length exceeded") reaches the client.
    fn from(error: UpstreamError) -> Self {
        let (status, code, message) = match &error {
            UpstreamError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The provider did not answer in time.".to_owned(),
            ),
            UpstreamError::Unsupported(_) => {
                (StatusCode::BAD_REQUEST, "unsupported", error.to_string())
            }
            // A client error the upstream found in the request is the client's to fix.
            UpstreamError::Status { status, message }
                if (400..500).contains(status) && *status != 408 && *status != 429 =>
            {
                return Self::new(
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                    "invalid_request_error",
                    Some("upstream_rejected"),
                    format!("The provider refused the request: {message}"),
                );
            }
            UpstreamError::Status { status: 429, .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "The provider is rate limiting this platform's calls; try again shortly."
                    .to_owned(),
            ),
            UpstreamError::Connect(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "The provider could not be reached.".to_owned(),
            ),
            UpstreamError::Status { .. } | UpstreamError::Protocol(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "The provider failed to answer.".to_owned(),
            ),
        };
        Self::new(status, "api_error", Some(code), message)
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthorized(message) => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                message,
            ),
            Refusal::Invalid { message, param } => Self::invalid(message, param),
            Refusal::ModelNotAllowed(model) => Self::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                Some("model_not_allowed"),
                format!("This API key may not use the model `{model}`."),
            ),
            Refusal::ModelNotFound(model) => Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
                format!("The model `{model}` does not exist or no provider entry serves it."),
            )
            .with_param(Some("model")),
            Refusal::RateLimited {
                what,
                retry_after,
                limits,
            } => {
                let mut error = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    Some("rate_limit_exceeded"),
                    format!(
                        "Rate limit reached for {what} per minute on this API key; retry after {} s.",
                        retry_after.as_secs().max(1)
                    ),
                );
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                error
                    .0
                    .headers
                    .insert("retry-after", HeaderValue::from(seconds));
                rate_limit_headers(&mut error.0.headers, &limits);
                error
            }
            Refusal::TooManyUnknownKeys { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let mut error = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    Some("too_many_invalid_keys"),
                    format!(
                        "Too many requests with incorrect API keys from your address; retry after {seconds} s."
                    ),
                );
                error
                    .0
                    .headers
                    .insert("retry-after", HeaderValue::from(seconds));
                error
            }
            Refusal::OverBudget {
                scope,
                limit,
                spent,
                held,
            } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "budget_exceeded",
                Some("budget_exceeded"),
                format!(
                    "The {scope} budget is exhausted: limit {limit}, spent {spent}, held by calls in flight {held}."
                ),
            ),
            Refusal::Unavailable(message) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                Some("service_unavailable"),
                message,
            ),
            Refusal::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                Some("internal_error"),
                "The gateway failed to process the request.",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Parts {
            status,
            kind,
            code,
            message,
            param,
            headers,
        } = *self.0;
        let body = json!({"error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": code,
        }});
        (status, headers, axum::Json(body)).into_response()
    }
}

/// The OpenAI `x-ratelimit-*` headers for the limits the key has.
pub fn rate_limit_headers(headers: &mut HeaderMap, limits: &Limits) {
    let reset = format!("{}s", limits.reset.as_secs().max(1));
    for (name, limit) in [("requests", limits.rpm), ("tokens", limits.tpm)] {
        if let Some((limit, remaining)) = limit {
            for (suffix, value) in [
                ("limit", limit.to_string()),
                ("remaining", remaining.to_string()),
                ("reset", reset.clone()),
            ] {
                if let (Ok(name), Ok(value)) = (
                    axum::http::HeaderName::try_from(format!("x-ratelimit-{suffix}-{name}")),
                    HeaderValue::try_from(value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
    }
}
