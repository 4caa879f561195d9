//! What every `/v1` handler reads from a request: the body (bounded, as JSON), the key, the run.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::core::Gateway;
use crate::core::admit::{self, Admitted};
use crate::core::providers::ClientBody;
use crate::routes::error::ApiError;

/// The header an agent run's model calls carry, so the run's budget applies.
pub const RUN_HEADER: &str = "x-switchboard-run-id";

/// Reads the body (413 past `limit`) and parses it as a JSON object (400 otherwise). The body
/// is forwarded as sent, so a name written twice at the top level is refused: what the gateway
/// checks and charges (the model, `max_tokens`) must be what the upstream reads, whichever of
/// the two it would take.
pub async fn json_body(body: Body, limit: usize) -> Result<ClientBody, ApiError> {
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let unparsable = |e: serde_json::Error| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request ({e})."),
            None,
        )
    };
    let json = if raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        Value::Object(serde_json::from_slice::<Once>(&raw).map_err(unparsable)?.0)
    } else {
        serde_json::from_slice::<Value>(&raw).map_err(unparsable)?
    };
    if !json.is_object() {
        return Err(ApiError::invalid(
            "The request body must be a JSON object.",
            None,
        ));
    }
    Ok(ClientBody { json, raw })
}

/// A JSON object whose top-level names are each written once.
struct Once(Map<String, Value>);

impl<'de> Deserialize<'de> for Once {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Once;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Once, A::Error> {
                let mut map = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    if map.contains_key(&name) {
                        return Err(A::Error::custom(format!("`{name}` is given twice")));
                    }
                    let value = access.next_value()?;
                    map.insert(name, value);
                }
                Ok(Once(map))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
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
