//! The Anthropic adapter against mock-llm's `/v1/messages`.

use sb_gateway::core::providers::{ProviderKind, UpstreamError};
use serde_json::{Value, json};

use crate::helpers::{SENTENCE, assert_status, collect, http, mock, upstream, usage};

fn request() -> Value {
    json!({ "model": "mock-claude-sonnet", "messages": [
        { "role": "system", "content": "be brief" },
        { "role": "user", "content": "say something nice" },
    ] })
}

#[tokio::test]
async fn a_completion_comes_back_in_the_openai_format() {
    let app = mock().await;
    let up = upstream(ProviderKind::Anthropic, &app, "");
    let done = up.chat(&http(), &request().into()).await.unwrap();
    assert_eq!(done.json()["object"], "chat.completion");
    assert_eq!(done.json()["model"], "mock-claude-sonnet");
    assert!(done.json()["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(done.json()["choices"][0]["message"]["role"], "assistant");
    assert_eq!(done.json()["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(done.json()["choices"][0]["finish_reason"], "stop");
    // The system prompt counts: 2 + 3 words in.
    assert_eq!(done.usage, usage(5, 21));
    assert_eq!(done.json()["usage"]["total_tokens"], 26);
}

#[tokio::test]
async fn max_tokens_is_passed_and_length_maps() {
    let app = mock().await;
    let mut body = request();
    body["max_tokens"] = json!(5);
    let done = upstream(ProviderKind::Anthropic, &app, "")
        .chat(&http(), &body.clone().into())
        .await
        .unwrap();
    assert_eq!(
        done.json()["choices"][0]["message"]["content"],
        "Hello! This is mock-llm, an"
    );
    assert_eq!(done.json()["choices"][0]["finish_reason"], "length");
    assert_eq!(done.usage, usage(5, 5));
}

#[tokio::test]
async fn a_stream_translates_to_chunks_and_usage() {
    let app = mock().await;
    let up = upstream(ProviderKind::Anthropic, &app, "");
    let non_stream = up.chat(&http(), &request().into()).await.unwrap();
    let got = collect(up.chat_stream(&http(), &request()).await.unwrap()).await;
    assert_eq!(got.error, None);
    assert_eq!(
        got.content(),
        non_stream.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    let first = &got.chunks[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    // The role chunk, 21 words, the finish chunk.
    assert_eq!(got.chunks.len(), 23);
    assert_eq!(got.finish_reason(), Some("stop"));
    assert!(got.chunks.iter().all(|c| c["id"] == first["id"]));
    // Input first (with the mock's placeholder output of 1), then the final count.
    assert_eq!(got.usages, vec![usage(5, 1), usage(5, 21)]);
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let app = mock().await;
    let up = upstream(ProviderKind::Anthropic, &app, "");
    let mut body = request();
    body["tools"] = json!([{ "type": "function", "function": { "name": "lookup",
        "parameters": { "type": "object", "properties": { "query": { "type": "string" } } } } }]);
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    assert_eq!(done.json()["choices"][0]["finish_reason"], "tool_calls");
    let message = done.json()["choices"][0]["message"].clone();
    assert_eq!(message["content"], Value::Null);
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({ "query": "mock" }));
    assert_eq!(done.usage, usage(5, 3));

    // Streamed: the call's id and name first, then its arguments.
    let got = collect(up.chat_stream(&http(), &body).await.unwrap()).await;
    assert_eq!(got.error, None);
    assert_eq!(got.finish_reason(), Some("tool_calls"));
    let opening = &got.chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(opening["index"], 0);
    assert_eq!(opening["function"]["name"], "lookup");
    assert!(opening["id"].as_str().unwrap().starts_with("call_"));
    let streamed: String = got
        .chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&streamed).unwrap(), arguments);
    assert_eq!(got.usage(), Some(usage(5, 3)));

    // The result goes back as a tool_result, and the model answers in text.
    body["messages"].as_array_mut().unwrap().extend([
        message.clone(),
        json!({ "role": "tool", "tool_call_id": call["id"], "content": "three results found" }),
    ]);
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    assert_eq!(done.json()["choices"][0]["finish_reason"], "stop");
    assert_eq!(done.json()["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(done.usage, usage(8, 21));
}

#[tokio::test]
async fn error_statuses_map_to_status_errors() {
    let app = mock().await;
    for (status, retryable) in [(529, true), (500, true), (429, true), (401, false)] {
        let up = upstream(
            ProviderKind::Anthropic,
            &app,
            &format!("/x/status={status}"),
        );
        assert_status(
            &up.chat(&http(), &request().into()).await.unwrap_err(),
            status,
            retryable,
        );
        let error = up.chat_stream(&http(), &request()).await.err().unwrap();
        assert_status(&error, status, retryable);
    }
}

#[tokio::test]
async fn a_cut_stream_yields_what_arrived_then_an_error() {
    let app = mock().await;
    // message_start, content_block_start, ping, two deltas: then the cut.
    let up = upstream(ProviderKind::Anthropic, &app, "/x/fail-after-chunks=5");
    let got = collect(up.chat_stream(&http(), &request()).await.unwrap()).await;
    assert_eq!(got.content(), "Hello! This ");
    assert_eq!(got.chunks.len(), 3, "{got:?}");
    // The input was reported before the cut; the output never was.
    assert_eq!(got.usages, vec![usage(5, 1)]);
    assert!(
        matches!(got.error, Some(UpstreamError::Connect(_))),
        "{got:?}"
    );
    assert!(!got.after_error);
}
