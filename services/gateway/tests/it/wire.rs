//! What goes on the wire: each adapter's URL and key header, read by a bare server.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sb_gateway::core::providers::{ProviderKind, Upstream};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{http, mock, raw_server, upstream};

const FAILURE: &str =
    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";

/// The request head `kind` sends for a chat with `base_url` (a path on the bare server).
async fn request_head(kind: ProviderKind, base_path: &str, stream: bool) -> String {
    let (addr, request) = raw_server(FAILURE);
    let up = Upstream {
        kind,
        base_url: format!("http://{addr}{base_path}"),
        api_key: Some(SecretString::from("sk-wire")),
    };
    let body = json!({ "model": "some-model", "messages": [{ "role": "user", "content": "hi" }] });
    // The bare server answers 500: only the request matters here.
    if stream {
        assert!(up.chat_stream(&http(), &body).await.is_err());
    } else {
        assert!(up.chat(&http(), &body.clone().into()).await.is_err());
    }
    let request = request.await.unwrap().to_ascii_lowercase();
    request.split("\r\n\r\n").next().unwrap().to_owned()
}

#[tokio::test]
async fn each_adapter_calls_its_path_with_its_key_header() {
    let head = request_head(ProviderKind::OpenAi, "/v1", false).await;
    assert!(
        head.starts_with("post /v1/chat/completions http/1.1"),
        "{head}"
    );
    assert!(head.contains("\r\nauthorization: bearer sk-wire"), "{head}");

    let head = request_head(
        ProviderKind::OpenAi,
        "/openai/deployments/d?api-version=2024-10-21",
        false,
    )
    .await;
    assert!(
        head.starts_with("post /openai/deployments/d/chat/completions?api-version=2024-10-21 "),
        "{head}"
    );

    let head = request_head(ProviderKind::Anthropic, "", true).await;
    assert!(head.starts_with("post /v1/messages http/1.1"), "{head}");
    assert!(head.contains("\r\nx-api-key: sk-wire"), "{head}");
    assert!(head.contains("\r\nanthropic-version: 2023-06-01"), "{head}");
    assert!(!head.contains("authorization"), "{head}");

    let head = request_head(ProviderKind::Gemini, "", false).await;
    assert!(
        head.starts_with("post /v1beta/models/some-model:generatecontent http/1.1"),
        "{head}"
    );
    assert!(head.contains("\r\nx-goog-api-key: sk-wire"), "{head}");
    let head = request_head(ProviderKind::Gemini, "", true).await;
    assert!(
        head.starts_with("post /v1beta/models/some-model:streamgeneratecontent?alt=sse http/1.1"),
        "{head}"
    );
}

#[tokio::test]
async fn chunks_are_forwarded_as_they_arrive() {
    let app = mock().await;
    for (kind, path, model) in [
        (
            ProviderKind::OpenAi,
            "/x/chunk-delay-ms=150,completion-tokens=4/v1",
            "mock-gpt-4o",
        ),
        (
            ProviderKind::Anthropic,
            "/x/chunk-delay-ms=150,completion-tokens=4",
            "mock-claude-sonnet",
        ),
        (
            ProviderKind::Gemini,
            "/x/chunk-delay-ms=150,completion-tokens=4",
            "mock-gemini-flash",
        ),
    ] {
        let up = upstream(kind, &app, path);
        let body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
        let started = Instant::now();
        let mut stream = up.chat_stream(&http(), &body).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.chunk().is_some(), "{kind:?}");
        let first_at = started.elapsed();
        while stream.next().await.is_some() {}
        let total = started.elapsed();
        // Four pieces and more, 150 ms apart: the whole takes over 450 ms, the first chunk not.
        assert!(total >= Duration::from_millis(450), "{kind:?}: {total:?}");
        assert!(
            first_at < total / 2,
            "{kind:?}: first {first_at:?} of {total:?}"
        );
    }
}
