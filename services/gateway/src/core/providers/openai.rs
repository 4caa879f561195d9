//! The openai adapter (being written).

use serde_json::Value;

use super::{ChunkStream, Completion, Upstream, UpstreamError};

pub async fn chat(
    _http: &reqwest::Client,
    _upstream: &Upstream,
    _body: &Value,
) -> Result<Completion, UpstreamError> {
    Err(UpstreamError::Unsupported("chat (adapter not written yet)"))
}

pub async fn chat_stream(
    _http: &reqwest::Client,
    _upstream: &Upstream,
    _body: &Value,
) -> Result<ChunkStream, UpstreamError> {
    Err(UpstreamError::Unsupported("chat (adapter not written yet)"))
}

pub async fn embeddings(
    _http: &reqwest::Client,
    _upstream: &Upstream,
    _body: &Value,
) -> Result<Completion, UpstreamError> {
    Err(UpstreamError::Unsupported(
        "embeddings (adapter not written yet)",
    ))
}
