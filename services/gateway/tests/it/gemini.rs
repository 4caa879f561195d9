//! The Gemini adapter against mock-llm's `/v1beta/models/{model}:…`.

use sb_gateway::core::providers::{ProviderKind, UpstreamError};
use serde_json::{Value, json};

use crate::helpers::{SENTENCE, assert_status, collect, http, mock, upstream, usage};

fn request() -> Value {
    json!({ "model": "mock-gemini-flash", "messages": [
        { "role": "system", "content": "be brief" },
        { "role": "user", "content": "say something nice" },
    ] })
}

#[tokio::test]
async fn a_completion_comes_back_in_the_openai_format() {
    let app = mock().await;
    let up = upstream(ProviderKind::Gemini, &app, "");
    let done = up.chat(&http(), &request().into()).await.unwrap();
    assert_eq!(done.json()["object"], "chat.completion");
    assert_eq!(done.json()["model"], "mock-gemini-flash");
    assert_eq!(done.json()["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(done.json()["choices"][0]["finish_reason"], "stop");
    assert_eq!(done.usage, usage(5, 21));
    assert_eq!(done.json()["usage"]["total_tokens"], 26);
}

#[tokio::test]
async fn max_tokens_and_json_output_translate() {
    let app = mock().await;
    let up = upstream(ProviderKind::Gemini, &app, "");
    let mut body = request();
    body["max_completion_tokens"] = json!(4);
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    assert_eq!(
        done.json()["choices"][0]["message"]["content"],
        "Hello! This is mock-llm,"
    );
    assert_eq!(done.json()["choices"][0]["finish_reason"], "length");
    assert_eq!(done.usage, usage(5, 4));

    let mut body = request();
    body["response_format"] = json!({ "type": "json_object" });
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    let answer = done.json();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(content).unwrap();
    assert_eq!(parsed["message"], SENTENCE);
}

#[tokio::test]
async fn a_stream_translates_to_chunks_and_usage() {
    let app = mock().await;
    let up = upstream(ProviderKind::Gemini, &app, "");
    let non_stream = up.chat(&http(), &request().into()).await.unwrap();
    let got = collect(up.chat_stream(&http(), &request()).await.unwrap()).await;
    assert_eq!(got.error, None);
    assert_eq!(
        got.content(),
        non_stream.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    assert_eq!(got.chunks[0]["choices"][0]["delta"]["role"], "assistant");
    // The role chunk, 21 words, the finish chunk.
    assert_eq!(got.chunks.len(), 23);
    assert_eq!(got.finish_reason(), Some("stop"));
    // Every event carries the usage so far; the last is the total.
    assert_eq!(got.usages.len(), 21);
    assert_eq!(got.usage(), Some(usage(5, 21)));
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let app = mock().await;
    let up = upstream(ProviderKind::Gemini, &app, "");
    let mut body = request();
    body["tools"] = json!([{ "type": "function", "function": { "name": "lookup",
        "parameters": { "type": "object", "properties": { "query": { "type": "string" } } } } }]);
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    // Gemini says STOP; a function call makes it tool_calls.
    assert_eq!(done.json()["choices"][0]["finish_reason"], "tool_calls");
    let message = done.json()["choices"][0]["message"].clone();
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({ "query": "mock" }));
    assert_eq!(done.usage, usage(5, 3));

    let got = collect(up.chat_stream(&http(), &body).await.unwrap()).await;
    assert_eq!(got.error, None);
    assert_eq!(got.finish_reason(), Some("tool_calls"));
    let streamed = &got.chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(streamed["index"], 0);
    assert_eq!(streamed["function"]["name"], "lookup");
    assert_eq!(got.usage(), Some(usage(5, 3)));

    // The result goes back as a functionResponse named after the call; the model answers.
    body["messages"].as_array_mut().unwrap().extend([
        message.clone(),
        json!({ "role": "tool", "tool_call_id": call["id"], "content": "three results found" }),
    ]);
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    assert_eq!(done.json()["choices"][0]["finish_reason"], "stop");
    assert_eq!(done.json()["choices"][0]["message"]["content"], SENTENCE);
    // The mock counts text parts only: the function response is not one.
    assert_eq!(done.usage, usage(5, 21));
}

#[tokio::test]
async fn error_statuses_map_to_status_errors() {
    let app = mock().await;
    for (status, retryable) in [(503, true), (429, true), (400, false), (404, false)] {
        let up = upstream(ProviderKind::Gemini, &app, &format!("/x/status={status}"));
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
    let up = upstream(ProviderKind::Gemini, &app, "/x/fail-after-chunks=3");
    let got = collect(up.chat_stream(&http(), &request()).await.unwrap()).await;
    // The role chunk and three words, each with its usage so far, then the cut.
    assert_eq!(got.content(), "Hello! This is ");
    assert_eq!(got.chunks.len(), 4, "{got:?}");
    assert_eq!(got.usage(), Some(usage(5, 3)));
    assert!(
        matches!(got.error, Some(UpstreamError::Connect(_))),
        "{got:?}"
    );
    assert!(!got.after_error);
}
