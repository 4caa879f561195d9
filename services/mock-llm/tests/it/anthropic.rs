//! The Anthropic Messages dialect: `POST /v1/messages`, JSON and named-event SSE.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    SENTENCE, SseEvent, client, json_data, mock, parse_sse, post_json, post_text,
};

/// A 2-word system prompt and a 5-word user message: 7 input tokens.
fn messages(extra: Value) -> Value {
    let mut body = json!({
        "model": "mock-claude-sonnet",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{ "role": "user", "content": "Hello there, how are you?" }],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn tools() -> Value {
    json!([
        { "name": "get_weather", "description": "Weather for a city", "input_schema": { "type": "object" } },
        { "name": "get_time", "description": "Time in a city", "input_schema": { "type": "object" } },
    ])
}

async fn stream(body: &Value) -> Vec<SseEvent> {
    let app = mock().await;
    let (status, content_type, text) =
        post_text(client().post(app.url("/v1/messages")).json(body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    parse_sse(&text)
}

/// Event names with runs of `content_block_delta` collapsed to one.
fn event_order(events: &[SseEvent]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in events {
        let name = name.clone().expect("every Anthropic event is named");
        if name == "content_block_delta" && names.last().is_some_and(|n| *n == name) {
            continue;
        }
        names.push(name);
    }
    names
}

#[tokio::test]
async fn message_answers_a_text_block_with_exact_usage() {
    let app = mock().await;
    let (status, _, body) = post_json(&app, "/v1/messages", &messages(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "mock-claude-sonnet");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert_eq!(
        body["content"],
        json!([{ "type": "text", "text": SENTENCE }])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 7);
    assert_eq!(body["usage"]["output_tokens"], 21);
}

#[tokio::test]
async fn max_tokens_truncates_with_stop_reason_max_tokens() {
    let app = mock().await;
    let (_, _, body) = post_json(&app, "/v1/messages", &messages(json!({ "max_tokens": 6 }))).await;
    assert_eq!(
        body["content"][0]["text"],
        "Hello! This is mock-llm, an offline"
    );
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["usage"]["output_tokens"], 6);
    assert_eq!(body["usage"]["input_tokens"], 7);
}

#[tokio::test]
async fn block_arrays_in_system_and_messages_are_counted() {
    let app = mock().await;
    let request = messages(json!({
        "system": [{ "type": "text", "text": "You are a pirate." }],
        "messages": [
            { "role": "user", "content": [{ "type": "text", "text": "Say hi" }, { "type": "text", "text": "to me" }] },
            { "role": "assistant", "content": "Ahoy there" },
            { "role": "user", "content": "Again" },
        ],
    }));
    let (status, _, body) = post_json(&app, "/v1/messages", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 4 + (2 + 2) + 2 + 1.
    assert_eq!(body["usage"]["input_tokens"], 11);
}

#[tokio::test]
async fn stream_sends_the_named_events_in_order_with_split_usage() {
    let events = stream(&messages(json!({ "stream": true }))).await;
    assert_eq!(
        event_order(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = json_data(&events);
    // Each event's data names its own type.
    for ((name, _), value) in events.iter().zip(&data) {
        assert_eq!(value["type"].as_str(), name.as_deref(), "{value}");
    }

    let start = &data[0]["message"];
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 7);
    assert_eq!(
        data[1]["content_block"],
        json!({ "type": "text", "text": "" })
    );

    let deltas: Vec<&Value> = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .collect();
    assert!(
        deltas
            .iter()
            .all(|d| d["delta"]["type"] == "text_delta" && d["index"] == 0)
    );
    let text: String = deltas
        .iter()
        .map(|d| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, SENTENCE);
    assert_eq!(deltas.len(), 21, "one word per delta");

    let message_delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(message_delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(message_delta["usage"]["output_tokens"], 21);
}

#[tokio::test]
async fn streamed_max_tokens_reports_max_tokens_and_the_cut_count() {
    let events = stream(&messages(json!({ "stream": true, "max_tokens": 3 }))).await;
    let data = json_data(&events);
    let text: String = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello! This is");
    let message_delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(message_delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(message_delta["usage"]["output_tokens"], 3);
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 7);
}

#[tokio::test]
async fn missing_max_tokens_is_a_400_in_anthropic_shape() {
    let app = mock().await;
    for stream in [false, true] {
        let mut request = messages(json!({ "stream": stream }));
        request.as_object_mut().unwrap().remove("max_tokens");
        let (status, headers, body) = post_json(&app, "/v1/messages", &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_tokens"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_in_anthropic_shape() {
    let app = mock().await;
    let request = client()
        .post(app.url("/v1/messages"))
        .header("content-type", "application/json")
        .body("{not json");
    let (status, _, body) = crate::helpers::send_json(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn offered_tools_get_a_tool_use_block() {
    let app = mock().await;
    let (status, _, body) =
        post_json(&app, "/v1/messages", &messages(json!({ "tools": tools() }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let content = body["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    assert_eq!(content[0]["type"], "tool_use");
    assert_eq!(content[0]["name"], "get_weather");
    assert_eq!(content[0]["input"], json!({ "query": "mock" }));
    assert!(!content[0]["id"].as_str().unwrap().is_empty());
    assert_eq!(body["stop_reason"], "tool_use");
    // "get_weather" is one word, `{"query": "mock"}` two.
    assert_eq!(body["usage"]["output_tokens"], 3);
    assert_eq!(body["usage"]["input_tokens"], 7);
}

#[tokio::test]
async fn tool_choice_names_the_tool_or_switches_tools_off() {
    let app = mock().await;
    let forced = messages(
        json!({ "tools": tools(), "tool_choice": { "type": "tool", "name": "get_time" } }),
    );
    let (_, _, body) = post_json(&app, "/v1/messages", &forced).await;
    assert_eq!(body["content"][0]["name"], "get_time");

    let off = messages(json!({ "tools": tools(), "tool_choice": { "type": "none" } }));
    let (_, _, body) = post_json(&app, "/v1/messages", &off).await;
    assert_eq!(
        body["content"],
        json!([{ "type": "text", "text": SENTENCE }])
    );
    assert_eq!(body["stop_reason"], "end_turn");
}

#[tokio::test]
async fn streamed_tool_use_sends_the_input_as_json_deltas() {
    let events = stream(&messages(json!({ "stream": true, "tools": tools() }))).await;
    assert_eq!(
        event_order(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = json_data(&events);
    let block = &data[1]["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    let partial: String = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        json!({ "query": "mock" })
    );
    let message_delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(message_delta["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn after_a_tool_result_the_reply_is_text() {
    let app = mock().await;
    let request = messages(json!({
        "tools": tools(),
        "messages": [
            { "role": "user", "content": "What is the weather?" },
            { "role": "assistant", "content": [{ "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": { "city": "Paris" } }] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm" }] },
        ],
    }));
    let (status, _, body) = post_json(&app, "/v1/messages", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["content"],
        json!([{ "type": "text", "text": SENTENCE }])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    // System 2, question 4, tool result 3; the tool_use block carries no text.
    assert_eq!(body["usage"]["input_tokens"], 9);
}
