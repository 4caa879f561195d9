//! Calls through the whole gateway: key, policy, provider, metering.

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{KeyOptions, Stack, chat_body};

#[tokio::test]
async fn a_completion_is_answered_and_metered_with_the_providers_usage() {
    let stack = Stack::new().await;
    let response = stack
        .chat(&chat_body("mock-gpt-4o", "hello there"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let usage = &body["usage"];
    let events = stack.wait_for_usage(1).await;
    let event = &events[0];
    assert_eq!(event.status, "ok");
    assert_eq!(event.model, "mock-gpt-4o");
    assert_eq!(event.provider, "openai");
    assert_eq!(event.input_tokens, usage["prompt_tokens"].as_u64().unwrap());
    assert_eq!(
        event.output_tokens,
        usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(event.api_key_id.unwrap().as_uuid(), stack.key_id);
    assert_eq!(event.workspace_id.unwrap(), stack.tenant.workspace);
    // mock-gpt-4o: $2.50 in, $10 out per million tokens, each part rounded up.
    let expected = sb_kernel::Price {
        input: sb_kernel::Micros(2_500_000),
        cached_input: sb_kernel::Micros(1_250_000),
        output: sb_kernel::Micros(10_000_000),
    }
    .cost(
        event.input_tokens,
        event.cached_input_tokens,
        event.output_tokens,
    );
    assert_eq!(event.cost_micros, expected);
    assert!(event.cost_micros.0 > 0);
    assert_eq!(event.hops.len(), 1);
    assert_eq!(event.hops[0].status, "ok");
}

#[tokio::test]
async fn a_stream_is_forwarded_and_metered_with_usage_even_when_the_client_did_not_ask() {
    let stack = Stack::new().await;
    let mut body = chat_body("mock-gpt-4o", "stream please");
    body["stream"] = json!(true);
    let response = stack.chat(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(*frames.last().unwrap(), "data: [DONE]");
    let mut content = String::new();
    for frame in &frames[..frames.len() - 1] {
        let chunk: Value = serde_json::from_str(frame.strip_prefix("data: ").unwrap()).unwrap();
        assert!(
            chunk.get("usage").is_none_or(Value::is_null),
            "usage was not asked for: {chunk}"
        );
        content.push_str(
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    let events = stack.wait_for_usage(1).await;
    assert_eq!(events[0].status, "ok");
    assert_eq!(
        events[0].output_tokens,
        content.split_whitespace().count() as u64
    );
    assert!(events[0].input_tokens > 0 && events[0].cost_micros.0 > 0);
}

#[tokio::test]
async fn a_stream_that_asks_for_usage_gets_the_usage_chunk_last() {
    let stack = Stack::new().await;
    let mut body = chat_body("mock-gpt-4o", "stream please");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = stack
        .chat(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    let usage_chunk: Value =
        serde_json::from_str(frames[frames.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    let events = stack.wait_for_usage(1).await;
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        events[0].output_tokens
    );
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens"],
        events[0].input_tokens
    );
}

#[tokio::test]
async fn embeddings_and_models_work_with_the_key() {
    let stack = Stack::new().await;
    let response = stack
        .post(
            &stack.gateway,
            &stack.key,
            "/v1/embeddings",
            &json!({"model": "mock-embedding", "input": "a b c"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let events = stack.wait_for_usage(1).await;
    assert_eq!(
        events[0].input_tokens,
        body["usage"]["prompt_tokens"].as_u64().unwrap()
    );

    let (limited, _) = stack
        .add_key(
            "limited",
            KeyOptions {
                allowed_models: vec!["mock-gpt-4o-mini".into()],
                ..KeyOptions::default()
            },
        )
        .await;
    let models: Value = stack
        .http
        .get(stack.gateway.url("/v1/models"))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["mock-gpt-4o-mini"]);
    let all: Value = stack
        .http
        .get(stack.gateway.url("/v1/models"))
        .bearer_auth(&stack.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["data"].as_array().unwrap().len(),
        sb_mock_llm::MODELS.len()
    );
}

async fn error_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

#[tokio::test]
async fn bad_keys_get_401_in_the_openai_shape() {
    let stack = Stack::new().await;
    let body = chat_body("mock-gpt-4o", "hi");
    let url = stack.gateway.url("/v1/chat/completions");
    let (expired, _) = stack
        .add_key(
            "old",
            KeyOptions {
                expired: true,
                ..KeyOptions::default()
            },
        )
        .await;
    let fake = format!("sb_live_{}", "A".repeat(43));
    for request in [
        stack.http.post(&url).json(&body),
        stack.http.post(&url).bearer_auth("sk-not-ours").json(&body),
        stack.http.post(&url).bearer_auth(&fake).json(&body),
        stack.http.post(&url).bearer_auth(&expired).json(&body),
    ] {
        let (status, error) = error_of(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error["code"], "invalid_api_key");
        assert_eq!(error["type"], "invalid_request_error");
        assert!(error["message"].as_str().unwrap().len() > 10);
    }
    assert!(
        stack.usage_events().await.is_empty(),
        "nothing reached a provider"
    );
}

/// The attack: an anonymous client starts a large body and never finishes it (or sends one
/// of millions of tiny values). The gateway answers 401 from the headers alone, without
/// waiting for the body, let alone parsing it.
#[tokio::test]
async fn a_request_without_a_key_is_refused_before_its_body_is_read() {
    let stack = Stack::new().await;
    let url = stack.gateway.url("/v1/chat/completions");
    for key in [None, Some(format!("sb_live_{}", "A".repeat(43)))] {
        let opening: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::from_static(
            b"{\"model\": \"mock-gpt-4o\", \"messages\": [0,0,0,",
        ));
        // The rest of the body never comes.
        let endless = futures_util::stream::iter([opening]).chain(futures_util::stream::pending());
        let mut request = stack
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(endless));
        if let Some(key) = &key {
            request = request.bearer_auth(key);
        }
        let answered = tokio::time::timeout(std::time::Duration::from_secs(10), request.send())
            .await
            .expect("the gateway waited for a body it should not read");
        let (status, error) = error_of(answered.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    }
}

/// With a key, a body of more values than the gateway parses is a 400 naming the limit.
#[tokio::test]
async fn a_body_of_too_many_values_gets_400_without_being_parsed() {
    let stack = Stack::new().await;
    // A million values in 2 MB: under the byte limit, far over the value limit.
    let zeros = "0,".repeat(1_000_000);
    let text = format!(r#"{{"model": "mock-gpt-4o", "messages": [{zeros}0]}}"#);
    let response = stack.chat_text(text).send().await.unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("values"),
        "{error}"
    );
    assert!(stack.usage_events().await.is_empty());
}

#[tokio::test]
async fn malformed_requests_get_400_naming_the_field_and_change_nothing() {
    let stack = Stack::new().await;
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            Some("model"),
        ),
        (json!({"model": "mock-gpt-4o"}), Some("messages")),
        (
            json!({"model": "mock-gpt-4o", "messages": []}),
            Some("messages"),
        ),
        (
            json!({"model": "mock-gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            Some("stream"),
        ),
        (
            json!({"model": "mock-gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": -3}),
            Some("max_tokens"),
        ),
        (json!([1, 2]), None),
    ];
    for (body, param) in cases {
        let (status, error) = error_of(stack.chat(&body).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["param"].as_str(), param, "{body}: {error}");
    }
    // Not JSON; and a model named twice, as the body goes upstream as sent and the upstream
    // might read the other one than the gateway checked.
    for (text, says) in [
        ("{not json", "JSON"),
        (
            r#"{"model":"mock-gpt-4o","messages":[{"role":"user","content":"x"}],"model":"mock-o1"}"#,
            "`model` is given twice",
        ),
    ] {
        let response = stack.chat_text(text).send().await.unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
    }
    assert!(stack.usage_events().await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let stack = Stack::new().await;
    let big = "x".repeat(stack.config.gateway.max_body_bytes + 1);
    let (status, error) = error_of(
        stack
            .chat(&chat_body("mock-gpt-4o", &big))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error["code"], "request_too_large");
}

#[tokio::test]
async fn a_model_the_key_may_not_use_gets_403_and_an_unknown_one_404() {
    let stack = Stack::new().await;
    let (limited, _) = stack
        .add_key(
            "limited",
            KeyOptions {
                allowed_models: vec!["mock-gpt-4o-mini".into()],
                ..KeyOptions::default()
            },
        )
        .await;
    let response = stack
        .post(
            &stack.gateway,
            &limited,
            "/v1/chat/completions",
            &chat_body("mock-gpt-4o", "hi"),
        )
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "model_not_allowed");
    let (status, error) = error_of(
        stack
            .chat(&chat_body("gpt-7-turbo", "hi"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "model_not_found");
}

#[tokio::test]
async fn an_upstream_failure_is_a_502_and_is_metered_without_charge() {
    let stack = Stack::new().await;
    stack.point_entries_at("/x/status=500/v1").await;
    let (status, error) = error_of(
        stack
            .chat(&chat_body("mock-gpt-4o", "hi"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "upstream_error");
    let events = stack.wait_for_usage(1).await;
    assert_eq!(events[0].status, "upstream_error");
    assert_eq!(events[0].cost_micros.0, 0);
    // One try and one retry (GATEWAY_RETRIES=1), both recorded.
    assert_eq!(events[0].hops.len(), 2);
    assert!(events[0].hops.iter().all(|h| h.status == "http_500"));
}

#[tokio::test]
async fn anthropic_and_gemini_entries_are_called_in_their_dialect_and_priced_as_theirs() {
    let stack = Stack::new().await;
    let root = stack.mock.url("");
    stack
        .add_entry(
            "claude",
            "anthropic",
            &root,
            &["mock-claude-sonnet"],
            -1,
            Some("sk-ant-test"),
        )
        .await;
    stack
        .add_entry(
            "gemini",
            "gemini",
            &root,
            &["mock-gemini-flash"],
            -1,
            Some("gm-test"),
        )
        .await;
    for (model, stream) in [
        ("mock-claude-sonnet", false),
        ("mock-claude-sonnet", true),
        ("mock-gemini-flash", false),
        ("mock-gemini-flash", true),
    ] {
        let mut body = chat_body(model, "hello from the other side");
        body["stream"] = json!(stream);
        let response = stack.chat(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{model} stream={stream}");
        let text = response.text().await.unwrap();
        assert!(text.contains("mock-llm"), "{text}");
    }
    let events = stack.wait_for_usage(4).await;
    for (event, provider) in events
        .iter()
        .zip(["anthropic", "anthropic", "gemini", "gemini"])
    {
        assert_eq!(event.provider, provider);
        assert_eq!(event.status, "ok");
        assert!(
            event.input_tokens > 0 && event.output_tokens > 0,
            "{event:?}"
        );
        assert!(event.cost_micros.0 > 0, "{event:?}");
    }
    // The same answer counts the same, streamed or not.
    assert_eq!(events[0].output_tokens, events[1].output_tokens);
    assert_eq!(events[2].output_tokens, events[3].output_tokens);
}

/// The attack: a tenant admin points a provider entry at the platform's own network (the
/// ledger, an admin panel, a metadata address), by address or by a name that resolves there.
/// Without `PROVIDER_ALLOW_PRIVATE` the gateway never connects: an address literal makes the
/// entry unusable, and a name is refused by the client's resolver at connect time (so a name
/// that resolves elsewhere by the time of the call, DNS rebinding, is covered too).
#[tokio::test]
async fn provider_entries_cannot_reach_internal_addresses() {
    let stack = Stack::with(|c| c.gateway.provider_allow_private = false).await;
    let internal = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    internal.set_nonblocking(true).unwrap();
    let port = internal.local_addr().unwrap().port();
    for (name, base) in [
        ("by-address", format!("http://127.0.0.1:{port}/v1")),
        ("by-name", format!("http://localhost:{port}/v1")),
    ] {
        stack
            .add_entry(
                name,
                "openai",
                &base,
                &["mock-gpt-4o"],
                0,
                Some("sk-tenant"),
            )
            .await;
    }
    let response = stack
        .chat(&chat_body("mock-gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        !status.is_success(),
        "an internal upstream answered: {status}"
    );
    assert!(
        matches!(internal.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the gateway connected to an internal address"
    );
}

#[tokio::test]
async fn upstream_errors_reach_the_client_without_the_upstreams_own_words() {
    // The attack: point an entry at something on the platform's network and read its error
    // pages and connection errors back through the gateway (a port scanner with a tenant's
    // key). The address check is off here (the tests' upstreams are local), as an operator's
    // PROVIDER_ALLOW_PRIVATE would have it, so only the answers' words are under test.
    use axum::http::StatusCode as Code;
    let app = axum::Router::new()
        .route(
            "/page/v1/chat/completions",
            axum::routing::post(|| async {
                (
                    Code::NOT_FOUND,
                    "<html>internal admin panel: db password hunter2</html>",
                )
            }),
        )
        .route(
            "/crash/v1/chat/completions",
            axum::routing::post(|| async {
                (
                    Code::INTERNAL_SERVER_ERROR,
                    "panic at billing.internal.svc:8443",
                )
            }),
        )
        .route(
            "/provider/v1/chat/completions",
            axum::routing::post(|| async {
                (
                    Code::BAD_REQUEST,
                    axum::Json(
                        json!({"error": {"message": "maximum context length is 8192 tokens"}}),
                    ),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let stack = Stack::new().await;
    let cases = [
        ("page", format!("http://{addr}/page/v1"), 404, "hunter2"),
        (
            "crash",
            format!("http://{addr}/crash/v1"),
            502,
            "billing.internal",
        ),
        // Nothing listens on port 1: the connection error would name it.
        ("closed", "http://127.0.0.1:1/v1".to_owned(), 502, "refused"),
    ];
    for (name, base, expected, secret) in &cases {
        let model = format!("probe-{name}");
        stack
            .add_entry(name, "openai", base, &[model.as_str()], 0, None)
            .await;
        let (status, error) =
            error_of(stack.chat(&chat_body(&model, "hi")).send().await.unwrap()).await;
        assert_eq!(status.as_u16(), *expected, "{name}: {error}");
        let text = error.to_string();
        assert!(!text.contains(secret), "{name}: {text}");
        assert!(!text.contains("127.0.0.1"), "{name}: {text}");
    }
    // A provider's own error message about the request is the client's to read.
    stack
        .add_entry(
            "provider",
            "openai",
            &format!("http://{addr}/provider/v1"),
            &["probe-provider"],
            0,
            None,
        )
        .await;
    let (status, error) = error_of(
        stack
            .chat(&chat_body("probe-provider", "hi"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 8192 tokens"),
        "{error}"
    );
}

#[tokio::test]
async fn the_usage_event_carries_the_request_id_and_the_hold_for_explain_this_charge() {
    let stack = Stack::new().await;
    let response = stack
        .chat(&chat_body("mock-gpt-4o", "explain me"))
        .header("x-request-id", "req-explain-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "req-explain-1");
    // Without one, the gateway's own id (the response's) is the event's.
    let response = stack
        .chat(&chat_body("mock-gpt-4o", "explain me"))
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let events = stack.wait_for_usage(2).await;
    let ids: Vec<Option<&str>> = events.iter().map(|e| e.request_id.as_deref()).collect();
    assert!(ids.contains(&Some("req-explain-1")), "{ids:?}");
    assert!(ids.contains(&Some(made.as_str())), "{ids:?}");
    for event in &events {
        // The estimate held at admission: the prompt and the most output the call allows, so
        // never less than what the answer cost.
        let reserved = event.reserved_micros.expect("the hold is sent").0;
        assert!(
            reserved >= event.cost_micros.0,
            "{reserved} < {}",
            event.cost_micros.0
        );
    }
}
