//! `POST /v1/chat/completions`, whole or streamed (SSE).
//!
//! A stream is forwarded chunk by chunk as the upstream sends it; usage is always obtained (the
//! adapters ask the upstream for it), and a stream cut before it arrives is charged for what was
//! sent ([`crate::core::meter::StreamMeter`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;

use crate::core::{Gateway, call};
use crate::routes::admission::{Admission, ChatCompletions};
use crate::routes::error::ApiError;
use crate::routes::respond;

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/chat/completions", post(create))
}

async fn create(
    State(gw): State<Arc<Gateway>>,
    Admission(call, _): Admission<ChatCompletions>,
) -> Result<Response, ApiError> {
    if call.streams() {
        Ok(respond::stream(call::stream(gw, call).await?))
    } else {
        Ok(respond::whole(call::whole(&gw, call).await?))
    }
}
