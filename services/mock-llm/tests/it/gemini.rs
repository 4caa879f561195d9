//! The Gemini dialect: `:generateContent` and `:streamGenerateContent` (SSE with `alt=sse`,
//! otherwise one JSON array).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{SENTENCE, client, json_data, mock, parse_sse, post_json, post_text};

const GENERATE: &str = "/v1beta/models/mock-gemini-flash:generateContent";
const STREAM: &str = "/v1beta/models/mock-gemini-flash:streamGenerateContent";

/// One 5-word user turn.
fn request(extra: Value) -> Value {
    let mut body =
        json!({ "contents": [{ "role": "user", "parts": [{ "text": "Tell me a joke please" }] }] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn chunk_text(chunk: &Value) -> String {
    chunk["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn generate_content_answers_with_exact_usage_metadata() {
    let app = mock().await;
    let (status, _, body) = post_json(&app, GENERATE, &request(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["content"]["parts"], json!([{ "text": SENTENCE }]));
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(
        body["usageMetadata"],
        json!({ "promptTokenCount": 5, "candidatesTokenCount": 21, "totalTokenCount": 26 })
    );
    assert_eq!(body["modelVersion"], "mock-gemini-flash");
}

#[tokio::test]
async fn system_instruction_counts_toward_the_prompt() {
    let app = mock().await;
    let body = request(json!({ "systemInstruction": { "parts": [{ "text": "You are terse." }] } }));
    let (status, _, body) = post_json(&app, GENERATE, &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["usageMetadata"]["promptTokenCount"], 8);
    assert_eq!(body["usageMetadata"]["totalTokenCount"], 29);
}

#[tokio::test]
async fn max_output_tokens_truncates_with_max_tokens() {
    let app = mock().await;
    let (_, _, body) = post_json(
        &app,
        GENERATE,
        &request(json!({ "generationConfig": { "maxOutputTokens": 2 } })),
    )
    .await;
    assert_eq!(chunk_text(&body), "Hello! This");
    assert_eq!(body["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(body["usageMetadata"]["totalTokenCount"], 7);
}

#[tokio::test]
async fn json_mime_type_gives_parseable_json() {
    let app = mock().await;
    let (_, _, body) = post_json(
        &app,
        GENERATE,
        &request(json!({ "generationConfig": { "responseMimeType": "application/json" } })),
    )
    .await;
    let text = chunk_text(&body);
    let parsed: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(parsed["message"], SENTENCE);
}

#[tokio::test]
async fn function_declarations_get_a_function_call() {
    let app = mock().await;
    let tools = json!([{ "functionDeclarations": [{ "name": "find_joke", "parameters": { "type": "object" } }, { "name": "other" }] }]);
    let (status, _, body) =
        post_json(&app, GENERATE, &request(json!({ "tools": tools.clone() }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["candidates"][0]["content"]["parts"],
        json!([{ "functionCall": { "name": "find_joke", "args": { "query": "mock" } } }])
    );
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 3);

    // After a function response, the reply is text.
    let after = request(json!({ "tools": tools, "contents": [
        { "role": "user", "parts": [{ "text": "Tell me a joke please" }] },
        { "role": "model", "parts": [{ "functionCall": { "name": "find_joke", "args": {} } }] },
        { "role": "user", "parts": [{ "functionResponse": { "name": "find_joke", "response": { "joke": "none" } } }] },
    ]}));
    let (_, _, body) = post_json(&app, GENERATE, &after).await;
    assert_eq!(
        body["candidates"][0]["content"]["parts"],
        json!([{ "text": SENTENCE }])
    );
    assert_eq!(body["usageMetadata"]["promptTokenCount"], 5);
}

#[tokio::test]
async fn stream_with_alt_sse_sends_cumulative_usage_and_finishes_last() {
    let app = mock().await;
    let body = request(json!({ "systemInstruction": { "parts": [{ "text": "You are terse." }] } }));
    let (status, content_type, text) = post_text(
        client()
            .post(app.url(&format!("{STREAM}?alt=sse")))
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let chunks = json_data(&parse_sse(&text));
    assert_eq!(chunks.len(), 21, "one word per chunk");
    assert_eq!(chunks.iter().map(chunk_text).collect::<String>(), SENTENCE);

    let counts: Vec<u64> = chunks
        .iter()
        .map(|c| c["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "the count grows: {counts:?}"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["usageMetadata"]["promptTokenCount"] == 8)
    );

    let (last, rest) = chunks.split_last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"],
        json!({ "promptTokenCount": 8, "candidatesTokenCount": 21, "totalTokenCount": 29 })
    );
    assert!(
        rest.iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none()),
        "only the last chunk finishes"
    );
}

#[tokio::test]
async fn stream_without_alt_is_one_json_array() {
    let app = mock().await;
    let body = request(json!({ "generationConfig": { "maxOutputTokens": 4 } }));
    let (status, content_type, text) = post_text(client().post(app.url(STREAM)).json(&body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let parsed: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON value ({e}): {text}"));
    let chunks = parsed
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {text}"));
    assert_eq!(chunks.len(), 4);
    assert_eq!(
        chunks.iter().map(chunk_text).collect::<String>(),
        "Hello! This is mock-llm,"
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        last["usageMetadata"],
        json!({ "promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9 })
    );
}

#[tokio::test]
async fn unknown_method_is_a_404_in_gemini_shape() {
    let app = mock().await;
    let (status, _, body) = post_json(
        &app,
        "/v1beta/models/mock-gemini-flash:countTokens",
        &request(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn malformed_json_is_a_400_in_gemini_shape() {
    let app = mock().await;
    let request = client()
        .post(app.url(GENERATE))
        .header("content-type", "application/json")
        .body("[1, 2");
    let (status, _, body) = crate::helpers::send_json(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
}
