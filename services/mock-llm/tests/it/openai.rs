//! The OpenAI dialect: `/v1/chat/completions` (JSON and SSE), `/v1/models`, `/v1/embeddings`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{SENTENCE, client, json_data, mock, parse_sse, post_json, post_text};

/// A system message of 5 words and a user message of 6: 11 prompt tokens.
fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "mock-gpt-4o",
        "messages": [
            { "role": "system", "content": "You are a helpful assistant." },
            { "role": "user", "content": "What is the capital of France?" },
        ],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Two tools offered; the mock calls the first. The user message is 5 words.
fn with_tools(extra: Value) -> Value {
    let mut body = json!({
        "model": "mock-gpt-4o",
        "messages": [{ "role": "user", "content": "Find the weather in Paris" }],
        "tools": [
            { "type": "function", "function": { "name": "lookup", "parameters": { "type": "object" } } },
            { "type": "function", "function": { "name": "other", "parameters": { "type": "object" } } },
        ],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The delta contents of a chat stream, concatenated.
fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

#[tokio::test]
async fn chat_completion_answers_the_sentence_with_exact_usage() {
    let app = mock().await;
    let (status, headers, body) = post_json(&app, "/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock-gpt-4o");
    assert!(
        body["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{body}"
    );
    assert_eq!(body["choices"].as_array().unwrap().len(), 1);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    assert_eq!(body["usage"]["completion_tokens"], 21);
    assert_eq!(body["usage"]["total_tokens"], 32);
}

#[tokio::test]
async fn array_content_counts_only_its_text_parts() {
    let app = mock().await;
    let body = json!({
        "model": "mock-gpt-4o",
        "messages": [{ "role": "user", "content": [
            { "type": "text", "text": "Describe this picture" },
            { "type": "image_url", "image_url": { "url": "http://example.invalid/cat.png" } },
            { "type": "text", "text": "in detail" },
        ]}],
    });
    let (status, _, body) = post_json(&app, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], 5);
}

#[tokio::test]
async fn max_tokens_truncates_with_finish_length() {
    let app = mock().await;
    let (status, _, body) = post_json(
        &app,
        "/v1/chat/completions",
        &chat(json!({ "max_tokens": 5 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! This is mock-llm, an"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 16);
}

#[tokio::test]
async fn max_tokens_at_the_natural_length_is_not_a_truncation() {
    let app = mock().await;
    let (_, _, body) = post_json(
        &app,
        "/v1/chat/completions",
        &chat(json!({ "max_tokens": 21 })),
    )
    .await;
    assert_eq!(body["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 21);
}

#[tokio::test]
async fn max_completion_tokens_wins_over_max_tokens() {
    let app = mock().await;
    let (_, _, body) = post_json(
        &app,
        "/v1/chat/completions",
        &chat(json!({ "max_tokens": 10, "max_completion_tokens": 3 })),
    )
    .await;
    assert_eq!(body["choices"][0]["message"]["content"], "Hello! This is");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 14);
}

#[tokio::test]
async fn stream_with_include_usage_ends_with_a_usage_chunk_then_done() {
    let app = mock().await;
    let request = chat(json!({ "stream": true, "stream_options": { "include_usage": true } }));
    let (status, content_type, text) = post_text(
        client()
            .post(app.url("/v1/chat/completions"))
            .json(&request),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );

    let events = parse_sse(&text);
    assert!(
        events.iter().all(|(name, _)| name.is_none()),
        "OpenAI events are unnamed: {events:?}"
    );
    let (done, rest) = events.split_last().unwrap();
    assert_eq!(done.1, "[DONE]");
    assert!(
        !rest.iter().any(|(_, d)| d == "[DONE]"),
        "[DONE] only once, at the end"
    );
    let chunks = json_data(rest);

    let (usage_chunk, content_chunks) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 11);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 21);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 32);
    // Like the real API, the other chunks carry `"usage": null` when usage was asked for.
    for chunk in content_chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], usage_chunk["id"]);
        assert_eq!(chunk.get("usage"), Some(&Value::Null), "{chunk}");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1, "{chunk}");
    }
    assert_eq!(
        content_chunks[0]["choices"][0]["delta"]["role"],
        "assistant"
    );
    // The finish reason is on the last chunk with a choice, and only there.
    let finishes: Vec<&Value> = content_chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec![&json!("stop")]);
    assert_eq!(
        content_chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    assert_eq!(streamed_text(content_chunks), SENTENCE);
    // One word per content chunk.
    let pieces = content_chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .filter(|p| !p.is_empty())
        .count();
    assert_eq!(pieces, 21);

    // The same request without streaming answers the same text.
    let (_, _, whole) = post_json(&app, "/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(
        whole["choices"][0]["message"]["content"].as_str().unwrap(),
        streamed_text(content_chunks)
    );
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let app = mock().await;
    for request in [
        chat(json!({ "stream": true })),
        chat(json!({ "stream": true, "stream_options": { "include_usage": false } })),
    ] {
        let (status, content_type, text) = post_text(
            client()
                .post(app.url("/v1/chat/completions"))
                .json(&request),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let events = parse_sse(&text);
        let (done, rest) = events.split_last().unwrap();
        assert_eq!(done.1, "[DONE]");
        let chunks = json_data(rest);
        assert!(
            chunks.iter().all(|c| c.get("usage").is_none()),
            "no usage anywhere: {text}"
        );
        assert!(
            chunks
                .iter()
                .all(|c| c["choices"].as_array().unwrap().len() == 1),
            "no empty-choices chunk: {text}"
        );
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(streamed_text(&chunks), SENTENCE);
        // The role chunk, 21 words, the finish chunk.
        assert_eq!(chunks.len(), 23);
    }
}

#[tokio::test]
async fn streamed_max_tokens_stops_with_length() {
    let app = mock().await;
    let request = chat(
        json!({ "stream": true, "max_tokens": 4, "stream_options": { "include_usage": true } }),
    );
    let (_, _, text) = post_text(
        client()
            .post(app.url("/v1/chat/completions"))
            .json(&request),
    )
    .await;
    let events = parse_sse(&text);
    let chunks = json_data(&events[..events.len() - 1]);
    assert_eq!(streamed_text(&chunks), "Hello! This is mock-llm,");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 15);
}

#[tokio::test]
async fn offered_tools_get_a_call_to_the_first() {
    let app = mock().await;
    let (status, _, body) = post_json(&app, "/v1/chat/completions", &with_tools(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "lookup");
    assert!(
        calls[0]["id"].as_str().unwrap().starts_with("call_"),
        "{body}"
    );
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({ "query": "mock" }));
    // "lookup" is one word, `{"query": "mock"}` two.
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 8);
}

#[tokio::test]
async fn tool_choice_names_the_tool_or_switches_tools_off() {
    let app = mock().await;
    let forced = with_tools(
        json!({ "tool_choice": { "type": "function", "function": { "name": "other" } } }),
    );
    let (_, _, body) = post_json(&app, "/v1/chat/completions", &forced).await;
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "other"
    );

    let (_, _, body) = post_json(
        &app,
        "/v1/chat/completions",
        &with_tools(json!({ "tool_choice": "none" })),
    )
    .await;
    assert_eq!(body["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        body["choices"][0]["message"].get("tool_calls").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn streamed_tool_call_sends_name_then_arguments() {
    let app = mock().await;
    let request = with_tools(json!({ "stream": true }));
    let (status, _, text) = post_text(
        client()
            .post(app.url("/v1/chat/completions"))
            .json(&request),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks = json_data(&events[..events.len() - 1]);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert!(!calls.is_empty(), "{text}");
    assert_eq!(calls[0]["function"]["name"], "lookup");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert!(calls.iter().all(|c| c["index"] == 0));
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({ "query": "mock" })
    );
    assert_eq!(streamed_text(&chunks), "", "a tool call carries no text");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn after_a_tool_result_the_reply_is_text() {
    let app = mock().await;
    let request = with_tools(json!({ "messages": [
        { "role": "user", "content": "Find the weather in Paris" },
        { "role": "assistant", "content": null, "tool_calls": [
            { "id": "call_1", "type": "function", "function": { "name": "lookup", "arguments": "{\"query\": \"Paris\"}" } },
        ]},
        { "role": "tool", "tool_call_id": "call_1", "content": "sunny and 25 degrees" },
    ]}));
    let (status, _, body) = post_json(&app, "/v1/chat/completions", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        body["choices"][0]["message"].get("tool_calls").is_none(),
        "{body}"
    );
    // 5 words asked, 4 in the tool result; the assistant's null content counts nothing.
    assert_eq!(body["usage"]["prompt_tokens"], 9);
    assert_eq!(body["usage"]["completion_tokens"], 21);
}

#[tokio::test]
async fn json_object_response_format_gives_parseable_json() {
    let app = mock().await;
    for format in [
        json!({ "type": "json_object" }),
        json!({ "type": "json_schema", "json_schema": { "name": "x", "schema": {} } }),
    ] {
        let (status, _, body) = post_json(
            &app,
            "/v1/chat/completions",
            &chat(json!({ "response_format": format })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        let parsed: Value =
            serde_json::from_str(content).unwrap_or_else(|e| panic!("not JSON ({e}): {content}"));
        assert!(parsed.is_object(), "{content}");
        assert_eq!(parsed["message"], SENTENCE);
        // Wrapping the sentence in compact JSON adds no whitespace: still 21 words.
        assert_eq!(body["usage"]["completion_tokens"], 21);
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
    }
}

#[tokio::test]
async fn models_lists_the_mock_models() {
    let app = mock().await;
    let (status, _, body) = crate::helpers::send_json(client().get(app.url("/v1/models"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"mock-gpt-4o"), "{ids:?}");
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["object"] == "model")
    );
}

fn vector(item: &Value) -> Vec<f64> {
    item["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn embeddings_of_a_string_are_deterministic_unit_vectors() {
    let app = mock().await;
    let request = json!({ "model": "mock-embedding", "input": "the quick brown fox" });
    let (status, _, first) = post_json(&app, "/v1/embeddings", &request).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["object"], "list");
    assert_eq!(first["model"], "mock-embedding");
    assert_eq!(first["usage"]["prompt_tokens"], 4);
    assert_eq!(first["usage"]["total_tokens"], 4);
    let data = first["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["index"], 0);
    let v = vector(&data[0]);
    assert_eq!(v.len(), 16, "the default length");
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");

    let (_, _, second) = post_json(&app, "/v1/embeddings", &request).await;
    assert_eq!(vector(&second["data"][0]), v, "same input, same vector");
    let (_, _, other) = post_json(
        &app,
        "/v1/embeddings",
        &json!({ "model": "mock-embedding", "input": "the quick brown fix" }),
    )
    .await;
    assert_ne!(vector(&other["data"][0]), v, "other input, other vector");
}

#[tokio::test]
async fn embeddings_of_an_array_honour_dimensions() {
    let app = mock().await;
    let request = json!({ "model": "mock-embedding", "input": ["one two", "three four five"], "dimensions": 8 });
    let (status, _, body) = post_json(&app, "/v1/embeddings", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["index"], 0);
    assert_eq!(data[1]["index"], 1);
    assert!(data.iter().all(|d| vector(d).len() == 8), "{body}");
    assert_ne!(vector(&data[0]), vector(&data[1]));
    assert_eq!(body["usage"]["prompt_tokens"], 5);

    // An item of the array embeds as the same text sent alone.
    let (_, _, alone) = post_json(
        &app,
        "/v1/embeddings",
        &json!({ "model": "mock-embedding", "input": "three four five", "dimensions": 8 }),
    )
    .await;
    assert_eq!(vector(&alone["data"][0]), vector(&data[1]));
}

#[tokio::test]
async fn embeddings_reject_input_that_is_not_text() {
    let app = mock().await;
    let (status, _, body) = post_json(
        &app,
        "/v1/embeddings",
        &json!({ "model": "mock-embedding", "input": [1, 2, 3] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn malformed_json_is_a_400_in_openai_shape() {
    let app = mock().await;
    let request = client()
        .post(app.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{\"model\": \"mock-gpt-4o\", \"messages\": [");
    let (status, _, body) = crate::helpers::send_json(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    assert!(
        body["error"].get("param").is_some() && body["error"].get("code").is_some(),
        "{body}"
    );

    // Valid JSON without the required messages is refused the same way.
    let (status, _, body) = post_json(
        &app,
        "/v1/chat/completions",
        &json!({ "model": "mock-gpt-4o" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "invalid_request_error");
}
