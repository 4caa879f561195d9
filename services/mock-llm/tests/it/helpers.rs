//! Spawning the mock and reading what it sends.

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};
use sb_testkit::RunningApp;
use serde_json::Value;

/// The mock's reply, written out here rather than imported, so a change to it fails a test.
/// 21 words, so 21 tokens.
pub const SENTENCE: &str = "Hello! This is mock-llm, an offline stand-in for a real model. Its answers are deterministic, so tests can count every token.";

/// A fresh mock on a free port; each test gets its own (and so its own `fail-first` counters).
pub async fn mock() -> RunningApp {
    let app = sb_mock_llm::build("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the mock binds a free port");
    sb_testkit::spawn(app)
}

pub fn client() -> Client {
    Client::new()
}

/// Sends a request and reads the whole body as JSON.
pub async fn send_json(request: RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let response = request.send().await.expect("the mock answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("the body arrives whole");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {text}"));
    (status, headers, body)
}

/// POSTs `body` as JSON to `path` on `app` and reads a JSON answer.
pub async fn post_json(
    app: &RunningApp,
    path: &str,
    body: &Value,
) -> (StatusCode, HeaderMap, Value) {
    send_json(client().post(app.url(path)).json(body)).await
}

/// POSTs `body` and reads the whole answer as text, with its status and content type.
pub async fn post_text(request: RequestBuilder) -> (StatusCode, String, String) {
    let response = request.send().await.expect("the mock answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.expect("the body arrives whole");
    (status, content_type, text)
}

/// One server-sent event: its `event:` name, if any, and its `data:` lines joined by newlines.
pub type SseEvent = (Option<String>, String);

/// Splits an SSE body into events. Comment lines and fields other than `event` and `data`
/// are skipped; a block with neither is not an event.
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    let body = body.replace("\r\n", "\n");
    let mut events = Vec::new();
    for block in body.split("\n\n") {
        let mut name = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = Some(value.to_owned()),
                "data" => data.push(value),
                _ => {}
            }
        }
        if name.is_some() || !data.is_empty() {
            events.push((name, data.join("\n")));
        }
    }
    events
}

/// The data of every event, parsed as JSON (every event but OpenAI's `[DONE]` is JSON).
pub fn json_data(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|(_, data)| {
            serde_json::from_str(data)
                .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"))
        })
        .collect()
}

#[test]
fn parse_sse_reads_names_multiline_data_and_skips_comments() {
    let events = parse_sse(
        ": keep-alive\n\nevent: a\ndata: {\"x\":1}\n\ndata:two\ndata: lines\n\nid: 7\n\n",
    );
    assert_eq!(
        events,
        vec![
            (Some("a".to_owned()), "{\"x\":1}".to_owned()),
            (None, "two\nlines".to_owned())
        ]
    );
}
