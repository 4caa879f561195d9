//! Admission as extractors. A `/v1` handler that takes an [`Admission<E>`] gets a call that
//! was authenticated, read (bounded in bytes and in JSON values), checked against its
//! endpoint's fields ([`Schema`]) and admitted by the policy ([`crate::core::admit`]);
//! whatever was refused on the way is the extractor's rejection, an [`ApiError`].
//! [`Authenticated`] is the key alone.
//!
//! The key comes before the body: nobody without a key makes the gateway read, let alone
//! parse, a body (a 10 MiB body of small array elements is hundreds of MB as a `Value`).

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sb_kernel::RunId;
use sb_runtime::ClientIp;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess};
use serde_json::{Map, Value};

use crate::core::Gateway;
use crate::core::admit::{self, CallRequest};
use crate::core::call::{Call, Endpoint};
use crate::core::keys::KeyInfo;
use crate::core::providers::ClientBody;
use crate::routes::error::ApiError;

/// The header an agent run's model calls carry, so the run's budget applies.
pub const RUN_HEADER: &str = "x-switchboard-run-id";

/// An admitted call for the endpoint `E` describes.
pub struct Admission<E>(pub Call, pub PhantomData<E>);

impl<E: Schema> FromRequest<Arc<Gateway>> for Admission<E> {
    type Rejection = ApiError;

    /// The key first (401), then the body (413, 400), then the policy.
    async fn from_request(request: Request, gw: &Arc<Gateway>) -> Result<Self, ApiError> {
        let started = Instant::now();
        // Only the headers are kept past this point (the rest of the parts would be carried,
        // unused, through every await below).
        let (headers, client, body) = {
            let (parts, body) = request.into_parts();
            let client = parts.extensions.get::<ClientIp>().map(|c| c.0);
            (parts.headers, client, body)
        };
        let key = key(gw, &headers, client).await?;
        let body = json_body(body, gw.max_body_bytes).await?;
        for field in E::FIELDS {
            field.check(&body.json)?;
        }
        let request = CallRequest {
            body,
            endpoint: E::ENDPOINT,
            run_id: run_id(&headers)?,
            // Set (or replaced when not plain) by the standard layers before any handler.
            request_id: headers
                .get(sb_runtime::REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            started,
        };
        Ok(Self(admit::admit(gw, key, request).await?, PhantomData))
    }
}

/// The caller's key, from `Authorization: Bearer sb_live_…`.
pub struct Authenticated(pub Arc<KeyInfo>);

impl FromRequestParts<Arc<Gateway>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &Arc<Gateway>) -> Result<Self, ApiError> {
        let client = parts.extensions.get::<ClientIp>().map(|c| c.0);
        Ok(Self(key(gw, &parts.headers, client).await?))
    }
}

/// `client`: the caller's address (`sb_runtime::client_ip`), for the limit on unknown keys.
async fn key(
    gw: &Gateway,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Arc<KeyInfo>, ApiError> {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    Ok(admit::authenticate(gw, authorization, client).await?)
}

/// The agent run a call is part of ([`RUN_HEADER`]), if any; 400 when it is not a UUID.
fn run_id(headers: &HeaderMap) -> Result<Option<RunId>, ApiError> {
    headers
        .get(RUN_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!("The {RUN_HEADER} header must be a UUID."), None)
                })
        })
        .transpose()
}

/// What an endpoint's request body must hold, beyond being a JSON object.
pub trait Schema {
    const ENDPOINT: Endpoint;
    /// Checked in order; the first that fails is the 400.
    const FIELDS: &'static [Field];
}

/// `POST /v1/chat/completions`.
pub struct ChatCompletions;

impl Schema for ChatCompletions {
    const ENDPOINT: Endpoint = Endpoint::Chat;
    const FIELDS: &'static [Field] = &[
        Field::required("model", Value::is_string, "a string"),
        Field::required("messages", is_non_empty_array, "a non-empty array"),
        Field::optional("stream", Value::is_boolean, "a boolean"),
        Field::optional("max_tokens", Value::is_u64, "a positive integer"),
        Field::optional("max_completion_tokens", Value::is_u64, "a positive integer"),
        Field::optional("tools", Value::is_array, "an array"),
    ];
}

/// `POST /v1/embeddings`.
pub struct Embeddings;

impl Schema for Embeddings {
    const ENDPOINT: Endpoint = Endpoint::Embeddings;
    const FIELDS: &'static [Field] = &[
        Field::required("model", Value::is_string, "a string"),
        Field::required("input", is_text_or_list, "a string or an array"),
    ];
}

fn is_non_empty_array(value: &Value) -> bool {
    value.as_array().is_some_and(|a| !a.is_empty())
}

fn is_text_or_list(value: &Value) -> bool {
    value.is_string() || value.is_array()
}

/// A top-level field of a request body and the JSON type it must have.
pub struct Field {
    name: &'static str,
    /// Required: absent is a 400. Optional: absent or null is fine.
    required: bool,
    ok: fn(&Value) -> bool,
    expected: &'static str,
}

impl Field {
    const fn required(name: &'static str, ok: fn(&Value) -> bool, expected: &'static str) -> Self {
        Self {
            name,
            required: true,
            ok,
            expected,
        }
    }

    const fn optional(name: &'static str, ok: fn(&Value) -> bool, expected: &'static str) -> Self {
        Self {
            name,
            required: false,
            ok,
            expected,
        }
    }

    /// A 400 naming the field when it is missing or of another type.
    fn check(&self, body: &Value) -> Result<(), ApiError> {
        match body.get(self.name) {
            None if self.required => Err(ApiError::invalid(
                format!("Missing required parameter: '{}'.", self.name),
                Some(self.name),
            )),
            Some(v) if !(self.ok)(v) && (self.required || !v.is_null()) => Err(ApiError::invalid(
                format!(
                    "Invalid type for '{}': expected {}.",
                    self.name, self.expected
                ),
                Some(self.name),
            )),
            _ => Ok(()),
        }
    }
}

/// The most JSON values a request body may hold. A parsed value costs at least 32 bytes
/// whatever its text, so a body of `0,0,0,…` would cost 16 times its size; this bounds the
/// parsed body to about 13 MB. The largest legitimate bodies are embeddings of token arrays,
/// which OpenAI caps at 300,000 tokens per request.
const MAX_JSON_VALUES: usize = 400_000;

/// Reads the body (413 past `limit`), refuses one of more than [`MAX_JSON_VALUES`] values
/// before parsing it, and parses it as a JSON object (400 otherwise). The body is forwarded as
/// sent, so a name written twice at the top level is refused: what the gateway checks and
/// charges (the model, `max_tokens`) must be what the upstream reads, whichever of the two it
/// would take.
async fn json_body(body: Body, limit: usize) -> Result<ClientBody, ApiError> {
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    if json_values_over(&raw, MAX_JSON_VALUES) {
        return Err(ApiError::invalid(
            format!(
                "The JSON body of your request holds more than {MAX_JSON_VALUES} values; \
                 send fewer items per request."
            ),
            None,
        ));
    }
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

/// Whether the JSON text holds more than `max` values, counted without parsing: every `[`,
/// `{` and `,` outside strings starts at most one more value. An upper bound, so a body under
/// it is certainly under it; invalid JSON is left to the parser.
fn json_values_over(raw: &[u8], max: usize) -> bool {
    let mut count = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' | b',' => {
                    count += 1;
                    if count > max {
                        return true;
                    }
                }
                _ => {}
            }
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::json_values_over;

    #[test]
    fn values_are_counted_outside_strings_only() {
        assert!(!json_values_over(br#"{"a": [1, 2, 3]}"#, 5));
        assert!(json_values_over(br#"{"a": [1, 2, 3, 4, 5]}"#, 5));
        // Commas, brackets and escaped quotes inside strings are text, not values.
        assert!(!json_values_over(br#"{"a": "[,,,{,,,\",,,,]"}"#, 3));
        let many = format!("[{}0]", "0,".repeat(1000));
        assert!(json_values_over(many.as_bytes(), 1000));
        assert!(!json_values_over(many.as_bytes(), 1002));
    }
}
