//! The OpenAI adapter against mock-llm's `/v1`.

use sb_gateway::core::providers::{Http, ProviderKind, Upstream, UpstreamError, Usage, openai};
use serde_json::{Value, json};

use crate::helpers::{
    SENTENCE, assert_status, collect, http, mock, raw_server, stalling_server, upstream, usage,
};

fn request() -> Value {
    json!({ "model": "mock-gpt-4o", "messages": [
        { "role": "system", "content": "be brief" },
        { "role": "user", "content": "say something nice" },
    ] })
}

fn tools() -> Value {
    json!([{ "type": "function", "function": { "name": "lookup", "description": "Looks things up",
             "parameters": { "type": "object", "properties": { "query": { "type": "string" } } } } }])
}

#[tokio::test]
async fn a_completion_passes_through_with_its_usage() {
    let app = mock().await;
    let done = openai::chat(
        &http().client,
        &upstream(ProviderKind::OpenAi, &app, "/v1"),
        &request().to_string().into(),
    )
    .await
    .unwrap();
    assert_eq!(done.json()["object"], "chat.completion");
    assert_eq!(done.json()["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(done.json()["choices"][0]["finish_reason"], "stop");
    // "be brief" + "say something nice": 5 words in, the sentence's 21 out.
    assert_eq!(done.usage, usage(5, 21));
}

#[tokio::test]
async fn a_stream_yields_chunks_then_usage_even_unasked() {
    let app = mock().await;
    let up = upstream(ProviderKind::OpenAi, &app, "/v1");
    let mut body = request();
    body["stream"] = json!(true); // no stream_options: the adapter asks for usage itself
    let stream = up.chat_stream(&http(), &body).await.unwrap();
    let got = collect(stream).await;
    assert_eq!(got.error, None);
    assert_eq!(got.content(), SENTENCE);
    // The role chunk, 21 words, the finish chunk; the usage-only chunk is not a chunk.
    assert_eq!(got.chunks.len(), 23);
    assert!(
        got.chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(got.finish_reason(), Some("stop"));
    assert_eq!(got.usages, vec![usage(5, 21)]);
}

#[tokio::test]
async fn a_tool_call_round_trip() {
    let app = mock().await;
    let up = upstream(ProviderKind::OpenAi, &app, "/v1");
    let mut body = request();
    body["tools"] = tools();
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    let message = &done.json()["choices"][0]["message"];
    assert_eq!(done.json()["choices"][0]["finish_reason"], "tool_calls");
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], r#"{"query": "mock"}"#);
    // "lookup" + `{"query": "mock"}`: 3 words.
    assert_eq!(done.usage, usage(5, 3));

    body["messages"].as_array_mut().unwrap().extend([
        message.clone(),
        json!({ "role": "tool", "tool_call_id": call["id"], "content": "three results found" }),
    ]);
    let done = up.chat(&http(), &body.clone().into()).await.unwrap();
    assert_eq!(done.json()["choices"][0]["message"]["content"], SENTENCE);
    assert_eq!(done.usage, usage(8, 21));

    // Streamed, the call arrives in pieces with its index.
    body["messages"].as_array_mut().unwrap().truncate(2);
    let got = collect(up.chat_stream(&http(), &body).await.unwrap()).await;
    assert_eq!(got.error, None);
    assert_eq!(got.finish_reason(), Some("tool_calls"));
    let arguments: String = got
        .chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(arguments, r#"{"query": "mock"}"#);
    assert_eq!(got.usage(), Some(usage(5, 3)));
}

#[tokio::test]
async fn error_statuses_map_to_status_errors() {
    let app = mock().await;
    for (status, retryable) in [(503, true), (429, true), (400, false), (401, false)] {
        let up = upstream(
            ProviderKind::OpenAi,
            &app,
            &format!("/x/status={status}/v1"),
        );
        let error = up.chat(&http(), &request().into()).await.unwrap_err();
        assert_status(&error, status, retryable);
        let error = up.chat_stream(&http(), &request()).await.err().unwrap();
        assert_status(&error, status, retryable);
    }
}

#[tokio::test]
async fn a_cut_stream_yields_what_arrived_then_an_error() {
    let app = mock().await;
    let up = upstream(ProviderKind::OpenAi, &app, "/x/fail-after-chunks=4/v1");
    let got = collect(up.chat_stream(&http(), &request()).await.unwrap()).await;
    // The role chunk and three words, then the cut.
    assert_eq!(got.chunks.len(), 4, "{got:?}");
    assert_eq!(got.content(), "Hello! This is ");
    assert!(got.usages.is_empty());
    assert!(
        matches!(got.error, Some(UpstreamError::Connect(_))),
        "{got:?}"
    );
    assert!(!got.after_error);
}

#[tokio::test]
async fn embeddings_count_input_tokens() {
    let app = mock().await;
    let up = upstream(ProviderKind::OpenAi, &app, "/v1");
    let body = json!({ "model": "mock-embedding", "input": ["one two", "three"] });
    let done = up.embeddings(&http(), &body.clone().into()).await.unwrap();
    assert_eq!(done.json()["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        done.usage,
        Usage {
            input_tokens: 3,
            ..Usage::default()
        }
    );
    let other = upstream(ProviderKind::Anthropic, &app, "");
    assert_eq!(
        other
            .embeddings(&http(), &body.clone().into())
            .await
            .unwrap_err(),
        UpstreamError::Unsupported("embeddings")
    );
}

#[tokio::test]
async fn unreachable_and_slow_upstreams() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let up = Upstream {
        kind: ProviderKind::OpenAi,
        base_url: format!("http://{closed}/v1"),
        api_key: None,
    };
    let error = up.chat(&http(), &request().into()).await.unwrap_err();
    assert!(matches!(error, UpstreamError::Connect(_)), "{error:?}");
    assert!(error.retryable());

    let app = mock().await;
    let slow = upstream(ProviderKind::OpenAi, &app, "/x/latency-ms=2000/v1");
    let impatient = Http {
        client: reqwest::Client::new(),
        timeout: std::time::Duration::from_millis(100),
    };
    assert_eq!(
        slow.chat(&impatient, &request().into()).await.unwrap_err(),
        UpstreamError::Timeout
    );
    let error = slow
        .chat_stream(&impatient, &request())
        .await
        .err()
        .expect("the stream's start times out");
    assert_eq!(error, UpstreamError::Timeout);
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_a_timeout_after_what_it_sent() {
    let addr = stalling_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
         3a\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\r\n",
    );
    let up = Upstream {
        kind: ProviderKind::OpenAi,
        base_url: format!("http://{addr}/v1"),
        api_key: None,
    };
    let impatient = Http {
        client: reqwest::Client::new(),
        timeout: std::time::Duration::from_millis(300),
    };
    let started = std::time::Instant::now();
    let got = collect(up.chat_stream(&impatient, &request()).await.unwrap()).await;
    assert_eq!(got.content(), "hi");
    assert_eq!(got.error, Some(UpstreamError::Timeout), "{got:?}");
    // Ended by the timeout, not by the server closing a minute later.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn an_unreadable_answer_is_a_protocol_error() {
    let (addr, _) = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot json!",
    );
    let up = Upstream {
        kind: ProviderKind::OpenAi,
        base_url: format!("http://{addr}/v1"),
        api_key: None,
    };
    let error = up.chat(&http(), &request().into()).await.unwrap_err();
    assert!(matches!(error, UpstreamError::Protocol(_)), "{error:?}");
    assert!(!error.retryable());
}

#[tokio::test]
async fn a_stream_closed_before_done_ends_with_an_error() {
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (addr, _) = raw_server(Box::leak(response.into_boxed_str()));
    let up = Upstream {
        kind: ProviderKind::OpenAi,
        base_url: format!("http://{addr}/v1"),
        api_key: None,
    };
    let got = collect(up.chat_stream(&http(), &request()).await.unwrap()).await;
    assert_eq!(got.content(), "hi");
    assert!(
        matches!(got.error, Some(UpstreamError::Protocol(_))),
        "{got:?}"
    );
}
