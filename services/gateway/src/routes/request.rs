//! What every `/v1` handler reads from a request: the body (bounded, as JSON), the key, the run.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde_json::Value;
use uuid::Uuid;

use crate::core::Gateway;
use crate::core::admit::{self, Admitted};
use crate::routes::error::ApiError;

/// The header an agent run's model calls carry, so the run's budget applies.
pub const RUN_HEADER: &str = "x-switchboard-run-id";

/// Reads the body (413 past `limit`) and parses it as a JSON object (400 otherwise).
pub async fn json_body(body: Body, limit: usize) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request ({e})."),
            None,
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid(
            "The request body must be a JSON object.",
            None,
        ));
    }
    Ok(value)
}

/// Authenticates, then admits the call (model, rate limits, budgets).
pub async fn admit(
    gw: &Arc<Gateway>,
    headers: &HeaderMap,
    body: &Value,
    started: Instant,
) -> Result<Admitted, ApiError> {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let key = admit::authenticate(gw, authorization).await?;
    let run_id = match headers.get(RUN_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| Uuid::parse_str(v).ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!("The {RUN_HEADER} header must be a UUID."), None)
                })?,
        ),
    };
    Ok(admit::admit(gw, key, body, run_id, started).await?)
}

/// A required field of a given JSON type, or a 400 naming it.
pub fn require(
    body: &Value,
    field: &'static str,
    ok: fn(&Value) -> bool,
    expected: &str,
) -> Result<(), ApiError> {
    match body.get(field) {
        None => Err(ApiError::invalid(
            format!("Missing required parameter: '{field}'."),
            Some(field),
        )),
        Some(v) if !ok(v) => Err(ApiError::invalid(
            format!("Invalid type for '{field}': expected {expected}."),
            Some(field),
        )),
        Some(_) => Ok(()),
    }
}

/// An optional field of a given JSON type, or a 400 naming it.
pub fn optional(
    body: &Value,
    field: &'static str,
    ok: fn(&Value) -> bool,
    expected: &str,
) -> Result<(), ApiError> {
    match body.get(field) {
        Some(v) if !v.is_null() && !ok(v) => Err(ApiError::invalid(
            format!("Invalid type for '{field}': expected {expected}."),
            Some(field),
        )),
        _ => Ok(()),
    }
}
