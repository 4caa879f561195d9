//! `POST /v1/embeddings`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;

use crate::core::{Gateway, call};
use crate::routes::admission::{Admission, Embeddings};
use crate::routes::error::ApiError;
use crate::routes::respond;

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/embeddings", post(create))
}

async fn create(
    State(gw): State<Arc<Gateway>>,
    Admission(call, _): Admission<Embeddings>,
) -> Result<Response, ApiError> {
    Ok(respond::whole(call::whole(&gw, call).await?))
}
