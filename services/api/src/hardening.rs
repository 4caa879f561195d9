//! HTTP hardening on every api route: security headers, CORS from `CORS_ORIGINS`, a body limit
//! and a request timeout, and problem+json for unknown routes and methods.
//!
//! The body is read whole (up to the limit, within the timeout) before routing, so a slow or
//! endless upload never holds a database connection: handlers open their tenant transaction
//! in an extractor that runs before the body extractor.
//!
//! No route authenticates by cookie (the dashboard sends a bearer token), so there is nothing
//! for a cross-site request to ride on and no CSRF token is needed; CORS never allows
//! credentials.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::ApiError;

const HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    ),
    ("cross-origin-opener-policy", "same-origin"),
];

pub fn harden(
    router: Router,
    cors_origins: &[String],
    max_body_bytes: usize,
    timeout: Duration,
) -> Router {
    let mut router = router
        // The dashboard where no route matched (`crate::web` decides what is its), else 404.
        .fallback(|req: Request| async move {
            crate::web::respond(req.method(), req.uri(), req.headers()).unwrap_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_such_route",
                    "no such route; /docs lists them",
                )
                .into_response()
            })
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; /docs lists what it takes",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(max_body_bytes, read_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(cors(cors_origins));
    for (name, value) in HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    router
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// Reads the whole body before the handler runs: 413 past `limit`.
async fn read_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            next.run(Request::from_parts(parts, Body::from(collected.to_bytes())))
                .await
        }
        Err(e) if e.is::<LengthLimitError>() => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the api accepts ({limit} bytes)"),
        )
        .into_response(),
        Err(e) => ApiError::bad_request("unreadable_body", format!("could not read the body: {e}"))
            .into_response(),
    }
}
