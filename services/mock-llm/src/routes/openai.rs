//! The OpenAI dialect: `/v1/chat/completions` (JSON and SSE), `/v1/models`, `/v1/embeddings`.
//! Like the real API, a stream carries usage only when asked for with
//! `stream_options.include_usage`, in a last chunk with empty `choices`. The model
//! `mock-agent` answers from a script in the conversation (see [`crate::core::agent`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Dialect, Directives, SharedState, data, inject, paced, parse};
use crate::core::agent;
use crate::core::completion::{Completion, Finish, Output, Prompt, complete};
use crate::core::embedding::{DEFAULT_DIMENSIONS, embed};
use crate::core::tokens;

/// The models the mock serves, by dialect.
pub const MODELS: &[&str] = &[
    "mock-gpt-4o",
    "mock-gpt-4o-mini",
    "mock-claude-sonnet",
    "mock-gemini-flash",
    "mock-embedding",
    agent::MODEL,
];

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
}

async fn models() -> Json<Value> {
    let data: Vec<Value> = MODELS.iter().map(|m| json!({ "id": m, "object": "model", "created": 1_700_000_000, "owned_by": "mock-llm" })).collect();
    Json(json!({ "object": "list", "data": data }))
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    tools: Vec<Tool>,
    tool_choice: Option<Value>,
    response_format: Option<Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Value>,
}

#[derive(Deserialize)]
struct Tool {
    function: ToolFunction,
}

#[derive(Deserialize)]
struct ToolFunction {
    name: String,
}

impl ChatRequest {
    fn prompt(&self) -> Prompt {
        let texts = self
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(content_text)
            .collect();
        let tools_off = self.tool_choice.as_ref().is_some_and(|c| c == "none");
        let forced_tool = self
            .tool_choice
            .as_ref()
            .and_then(|c| c.pointer("/function/name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let json_output = self
            .response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_object" || t == "json_schema");
        Prompt {
            texts,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            tools: if tools_off {
                Vec::new()
            } else {
                self.tools.iter().map(|t| t.function.name.clone()).collect()
            },
            forced_tool: if tools_off { None } else { forced_tool },
            after_tool_result: self.messages.last().is_some_and(|m| m.role == "tool"),
            json_output,
        }
    }
}

/// Text of a message's content: a string, or the text parts of an array joined by `separator`.
fn content_text_joined(content: &Value, separator: &str) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(separator),
        _ => String::new(),
    }
}

fn content_text(content: &Value) -> String {
    content_text_joined(content, " ")
}

/// `mock-agent`'s answer: the script is the first user message (text parts one per line, so a
/// script split across parts keeps its lines), the position its count of assistant messages.
/// `Err` is the 400 for a script line that does not parse.
// The error is the finished response, returned straight to axum.
#[allow(clippy::result_large_err)]
fn agent_turn(request: &ChatRequest, prompt_tokens: u32) -> Result<agent::Turn, Response> {
    let script = request
        .messages
        .iter()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.as_ref())
        .map(|c| content_text_joined(c, "\n"))
        .unwrap_or_default();
    let assistant_messages = request
        .messages
        .iter()
        .filter(|m| m.role == "assistant")
        .count();
    agent::answer(&script, assistant_messages, prompt_tokens).map_err(|e| {
        super::error(
            Dialect::OpenAi,
            axum::http::StatusCode::BAD_REQUEST,
            &e.to_string(),
        )
    })
}

fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCall => "tool_calls",
    }
}

fn usage(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
        "prompt_tokens_details": { "cached_tokens": 0 },
    })
}

async fn chat(
    State(state): State<SharedState>,
    Directives(faults): Directives,
    body: Bytes,
) -> Response {
    if let Some(failure) = inject(Dialect::OpenAi, &faults, &state).await {
        return failure;
    }
    let request: ChatRequest = match parse(Dialect::OpenAi, &body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let prompt = request.prompt();
    let completion = if request.model == agent::MODEL {
        match agent_turn(&request, prompt.tokens()) {
            Ok(turn) => {
                // Before the response starts, streamed or not: a slow model is slow to answer.
                if !turn.delay.is_zero() {
                    tokio::time::sleep(turn.delay).await;
                }
                turn.completion
            }
            Err(e) => return e,
        }
    } else {
        complete(&prompt, faults.completion_tokens)
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();
    if !request.stream {
        let message = match &completion.output {
            Output::Text(_) => json!({ "role": "assistant", "content": completion.text() }),
            Output::ToolCall {
                id,
                name,
                arguments,
            } => json!({
                "role": "assistant", "content": null,
                "tool_calls": [{ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } }],
            }),
        };
        return Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": request.model,
            "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason(&completion.finish), "logprobs": null }],
            "usage": usage(&completion),
        }))
        .into_response();
    }
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": request.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    };
    let mut events: Vec<Event> = vec![chunk(json!({ "role": "assistant", "content": "" }), None)];
    match &completion.output {
        Output::Text(_) => events.extend(
            completion
                .pieces()
                .into_iter()
                .map(|p| chunk(json!({ "content": p }), None)),
        ),
        Output::ToolCall {
            id: call_id,
            name,
            arguments,
        } => {
            events.push(chunk(json!({ "tool_calls": [{ "index": 0, "id": call_id, "type": "function", "function": { "name": name, "arguments": "" } }] }), None));
            events.push(chunk(
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": arguments } }] }),
                None,
            ));
        }
    }
    events.push(chunk(json!({}), Some(finish_reason(&completion.finish))));
    if include_usage {
        events.push(data(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": request.model,
            "choices": [], "usage": usage(&completion),
        })));
    }
    events.push(Event::default().data("[DONE]"));
    Sse::new(paced(events, &faults)).into_response()
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: Value,
    dimensions: Option<usize>,
}

async fn embeddings(
    State(state): State<SharedState>,
    Directives(faults): Directives,
    body: Bytes,
) -> Response {
    if let Some(failure) = inject(Dialect::OpenAi, &faults, &state).await {
        return failure;
    }
    let request: EmbeddingRequest = match parse(Dialect::OpenAi, &body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let inputs: Vec<String> = match &request.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return super::error(
                Dialect::OpenAi,
                axum::http::StatusCode::BAD_REQUEST,
                "input must be a string or an array of strings",
            );
        }
    };
    let dimensions = request
        .dimensions
        .unwrap_or(DEFAULT_DIMENSIONS)
        .clamp(1, 4096);
    let data: Vec<Value> = inputs.iter().enumerate().map(|(i, text)| json!({ "object": "embedding", "index": i, "embedding": embed(text, dimensions) })).collect();
    let prompt_tokens: u32 = inputs.iter().map(|t| tokens::count(t)).sum();
    Json(json!({
        "object": "list", "data": data, "model": request.model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    }))
    .into_response()
}

/// Seconds since the epoch, as OpenAI's `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
