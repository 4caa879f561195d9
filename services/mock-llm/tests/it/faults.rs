//! Injected faults: `x-mock-*` headers and the `/x/{directives}` path prefix.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{SENTENCE, client, json_data, mock, parse_sse, post_json, send_json};

/// 1 prompt token.
fn chat(extra: Value) -> Value {
    let mut body =
        json!({ "model": "mock-gpt-4o", "messages": [{ "role": "user", "content": "Hi" }] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn anthropic() -> Value {
    json!({ "model": "mock-claude-sonnet", "max_tokens": 100, "messages": [{ "role": "user", "content": "Hi" }] })
}

fn gemini() -> Value {
    json!({ "contents": [{ "parts": [{ "text": "Hi" }] }] })
}

#[tokio::test]
async fn status_header_fails_in_each_dialects_shape() {
    let app = mock().await;
    let c = client();

    let (status, _, body) = send_json(
        c.post(app.url("/v1/chat/completions"))
            .header("x-mock-status", "503")
            .json(&chat(json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["type"], "server_error");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("503"),
        "{body}"
    );

    let (status, _, body) = send_json(
        c.post(app.url("/v1/messages"))
            .header("x-mock-status", "503")
            .json(&anthropic()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");

    let (status, _, body) = send_json(
        c.post(app.url("/v1beta/models/mock-gemini-flash:generateContent"))
            .header("x-mock-status", "503")
            .json(&gemini()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], 503);
    assert_eq!(body["error"]["status"], "UNAVAILABLE");

    let (status, _, body) = send_json(
        c.post(app.url("/v1/embeddings"))
            .header("x-mock-status", "500")
            .json(&json!({ "model": "mock-embedding", "input": "x" })),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["type"], "server_error");
}

#[tokio::test]
async fn status_path_prefix_fails_in_each_dialects_shape() {
    let app = mock().await;
    let (status, _, body) =
        post_json(&app, "/x/status=500/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["type"], "server_error");

    let (status, _, body) = post_json(&app, "/x/status=401/v1/messages", &anthropic()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");

    let (status, _, body) = post_json(
        &app,
        "/x/status=500/v1beta/models/mock-gemini-flash:streamGenerateContent",
        &gemini(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["status"], "INTERNAL");

    // Without a failing directive, the prefixed routes answer normally.
    let (status, _, body) = post_json(
        &app,
        "/x/completion-tokens=2/v1/chat/completions",
        &chat(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello! This");
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let app = mock().await;
    let c = client();
    let response = c
        .post(app.url("/x/status=429/v1/chat/completions"))
        .json(&chat(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");

    let response = c
        .post(app.url("/v1/messages"))
        .header("x-mock-status", "429")
        .json(&anthropic())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let response = c
        .post(app.url("/v1beta/models/mock-gemini-flash:generateContent"))
        .header("x-mock-status", "429")
        .json(&gemini())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");

    // Other errors do not.
    let response = c
        .post(app.url("/x/status=503/v1/chat/completions"))
        .json(&chat(json!({})))
        .send()
        .await
        .unwrap();
    assert!(!response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn headers_win_over_the_path_prefix() {
    let app = mock().await;
    let (status, _, _) = send_json(
        client()
            .post(app.url("/x/status=503/v1/chat/completions"))
            .header("x-mock-status", "429")
            .json(&chat(json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let app = mock().await;
    let started = Instant::now();
    let (status, _, _) = send_json(
        client()
            .post(app.url("/v1/chat/completions"))
            .header("x-mock-latency-ms", "300")
            .json(&chat(json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // The prefix form, before an injected failure.
    let started = Instant::now();
    let (status, _, _) = post_json(
        &app,
        "/x/latency-ms=200,status=503/v1/messages",
        &anthropic(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn chunk_delay_paces_a_stream() {
    let app = mock().await;
    // 3 words: the role chunk, 3 words, the finish chunk and [DONE] are 6 events, 5 gaps.
    let request = chat(json!({ "stream": true, "max_tokens": 3 }));
    let started = Instant::now();
    let text = client()
        .post(app.url("/v1/chat/completions"))
        .header("x-mock-chunk-delay-ms", "40")
        .json(&request)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let events = parse_sse(&text);
    assert_eq!(events.len(), 6, "{text}");
    assert_eq!(events.last().unwrap().1, "[DONE]");
}

#[tokio::test]
async fn fail_first_fails_the_first_requests_of_a_key_then_succeeds() {
    let app = mock().await;
    let c = client();
    let send = |key: &'static str| {
        c.post(app.url("/v1/chat/completions"))
            .header("x-mock-status", "503")
            .header("x-mock-fail-first", "2")
            .header("x-mock-key", key)
            .json(&chat(json!({})))
            .send()
    };
    assert_eq!(
        send("a").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send("a").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Another key has its own count.
    assert_eq!(
        send("b").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let third = send("a").await.unwrap();
    assert_eq!(third.status(), StatusCode::OK);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(send("a").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        send("b").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(send("b").await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn fail_first_in_the_prefix_counts_per_directive_string() {
    let app = mock().await;
    let path = "/x/status=500,fail-first=1/v1beta/models/mock-gemini-flash:generateContent";
    assert_eq!(
        post_json(&app, path, &gemini()).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(post_json(&app, path, &gemini()).await.0, StatusCode::OK);
}

/// Reads a body to its end; the bytes received, and the error that ended it, if one did.
async fn read_until_error(response: reqwest::Response) -> (String, Option<reqwest::Error>) {
    let mut received = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(e) => return (String::from_utf8(received).unwrap(), Some(e)),
        }
    }
    (String::from_utf8(received).unwrap(), None)
}

/// What reqwest reports for a chunked body whose connection closes before the last chunk:
/// a decode error caused by an unexpected end of file.
fn assert_cut_off(error: &reqwest::Error) {
    assert!(error.is_decode(), "{error:?}");
    let mut source = std::error::Error::source(error);
    let mut eof = false;
    while let Some(e) = source {
        eof |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
        source = e.source();
    }
    assert!(eof, "not an unexpected EOF: {error:?}");
}

#[tokio::test]
async fn fail_after_chunks_cuts_an_openai_stream_after_exactly_n_events() {
    let app = mock().await;
    let request = chat(json!({ "stream": true, "stream_options": { "include_usage": true } }));
    for (n, delay) in [(0, "0"), (1, "0"), (3, "0"), (3, "5"), (5, "0")] {
        let response = client()
            .post(app.url("/v1/chat/completions"))
            .header("x-mock-fail-after-chunks", n.to_string())
            .header("x-mock-chunk-delay-ms", delay)
            .json(&request)
            .send()
            .await
            .unwrap_or_else(|e| panic!("n={n}: the head arrives before the cut: {e:?}"));
        // The failure comes after the head: the status is a success.
        assert_eq!(response.status(), StatusCode::OK);
        let (text, error) = read_until_error(response).await;
        assert_cut_off(
            &error.unwrap_or_else(|| {
                panic!("n={n}: the body ends with an error, not cleanly: {text}")
            }),
        );
        let events = parse_sse(&text);
        assert_eq!(events.len(), n, "n={n}, delay={delay}: {text}");
        assert!(!events.iter().any(|(_, d)| d == "[DONE]"), "{text}");
        let chunks = json_data(&events);
        assert!(
            chunks
                .iter()
                .all(|c| c["choices"][0]["finish_reason"].is_null()
                    && c.get("usage") == Some(&Value::Null)),
            "{text}"
        );
        if n == 3 {
            // The role chunk and the first two words, then nothing.
            let text: String = chunks
                .iter()
                .filter_map(|c| {
                    c.pointer("/choices/0/delta/content")
                        .and_then(Value::as_str)
                })
                .collect();
            assert_eq!(text, "Hello! This ");
        }
    }
}

#[tokio::test]
async fn fail_after_chunks_cuts_anthropic_and_gemini_streams() {
    let app = mock().await;
    let mut request = anthropic();
    request["stream"] = json!(true);
    let response = client()
        .post(app.url("/x/fail-after-chunks=4/v1/messages"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (text, error) = read_until_error(response).await;
    assert_cut_off(&error.expect("the body ends with an error"));
    let names: Vec<Option<String>> = parse_sse(&text).into_iter().map(|(name, _)| name).collect();
    let expected = [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
    ];
    assert_eq!(names, expected.map(|n| Some(n.to_owned())), "{text}");

    // Without alt=sse the cut leaves an unterminated JSON array.
    let response = client()
        .post(app.url("/v1beta/models/mock-gemini-flash:streamGenerateContent"))
        .header("x-mock-fail-after-chunks", "2")
        .json(&gemini())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (text, error) = read_until_error(response).await;
    assert_cut_off(&error.expect("the body ends with an error"));
    assert!(text.starts_with('[') && !text.ends_with(']'), "{text}");
    let two: Value = serde_json::from_str(&format!("{text}]"))
        .unwrap_or_else(|e| panic!("two whole elements ({e}): {text}"));
    assert_eq!(two.as_array().unwrap().len(), 2);

    // A cut beyond the stream's length changes nothing.
    let response = client()
        .post(app.url("/v1beta/models/mock-gemini-flash:streamGenerateContent?alt=sse"))
        .header("x-mock-fail-after-chunks", "500")
        .json(&gemini())
        .send()
        .await
        .unwrap();
    let (text, error) = read_until_error(response).await;
    assert!(error.is_none(), "{error:?}");
    let chunks = json_data(&parse_sse(&text));
    assert_eq!(chunks.len(), 21);
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
}

#[tokio::test]
async fn unknown_directive_is_a_400() {
    let app = mock().await;
    let c = client();
    let (status, _, body) = send_json(
        c.post(app.url("/v1/chat/completions"))
            .header("x-mock-explode", "1")
            .json(&chat(json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("explode"),
        "{body}"
    );

    for path in [
        "/x/explode=1/v1/messages",
        "/x/status/v1/messages",
        "/x/status=abc/v1/messages",
        "/x/status=99/v1/messages",
    ] {
        let (status, _, body) = post_json(&app, path, &anthropic()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn completion_tokens_sets_the_reply_length() {
    let app = mock().await;
    let (status, _, body) = send_json(
        client()
            .post(app.url("/v1/chat/completions"))
            .header("x-mock-completion-tokens", "50")
            .json(&chat(json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 50);
    assert_eq!(body["usage"]["total_tokens"], 51);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split_whitespace().count(), 50);
    // The sentence twice (42 words), then its first 8 words.
    let expected =
        format!("{SENTENCE} {SENTENCE} Hello! This is mock-llm, an offline stand-in for");
    assert_eq!(content, expected);

    // max_tokens still caps it.
    let (_, _, body) = post_json(&app, "/x/completion-tokens=50/v1/messages", &json!({ "model": "m", "max_tokens": 30, "messages": [{ "role": "user", "content": "Hi" }] })).await;
    assert_eq!(body["usage"]["output_tokens"], 30);
    assert_eq!(body["stop_reason"], "max_tokens");
}
