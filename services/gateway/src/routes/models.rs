//! `GET /v1/models`: the models this key may use.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::core::Gateway;
use crate::core::admit;
use crate::routes::admission::Authenticated;
use crate::routes::error::ApiError;

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/models", get(list))
}

async fn list(
    State(gw): State<Arc<Gateway>>,
    Authenticated(key): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let tenant = admit::tenant(&gw, &key).await?;
    let data: Vec<Value> = tenant
        .models()
        .into_iter()
        .filter(|m| key.allows(m))
        .map(|m| {
            let owner = tenant
                .routes(m)
                .first()
                .map_or("switchboard", |e| e.upstream.kind.as_str());
            json!({"id": m, "object": "model", "created": 0, "owned_by": owner})
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}
