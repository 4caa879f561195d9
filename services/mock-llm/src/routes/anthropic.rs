//! The Anthropic Messages dialect: `POST /v1/messages`, JSON and its named-event SSE stream
//! (`message_start` … `message_stop`), usage split between the first and the last event as
//! the real API does.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Dialect, Directives, SharedState, error, inject, paced, parse};
use crate::core::completion::{Completion, Finish, Output, Prompt, complete};

pub fn router() -> Router<SharedState> {
    Router::new().route("/v1/messages", post(messages))
}

#[derive(Deserialize)]
struct MessagesRequest {
    model: String,
    max_tokens: Option<u32>,
    system: Option<Value>,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Vec<Tool>,
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Value,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
}

/// Text of a content value: a string, or the text (and tool result) blocks of an array.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").or_else(|| b.get("content")).map(text_of))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

impl MessagesRequest {
    fn prompt(&self) -> Prompt {
        let mut texts: Vec<String> = self.system.iter().map(text_of).collect();
        texts.extend(self.messages.iter().map(|m| text_of(&m.content)));
        let tools_off = self
            .tool_choice
            .as_ref()
            .and_then(|c| c.get("type"))
            .is_some_and(|t| t == "none");
        let forced_tool = self
            .tool_choice
            .as_ref()
            .filter(|c| c.get("type").is_some_and(|t| t == "tool"))
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let last = self.messages.last();
        let after_tool_result = last.is_some_and(|m| {
            m.role == "user"
                && m.content.as_array().is_some_and(|b| {
                    b.iter()
                        .any(|b| b.get("type").is_some_and(|t| t == "tool_result"))
                })
        });
        Prompt {
            texts,
            max_tokens: self.max_tokens,
            tools: if tools_off {
                Vec::new()
            } else {
                self.tools.iter().map(|t| t.name.clone()).collect()
            },
            forced_tool: if tools_off { None } else { forced_tool },
            after_tool_result,
            json_output: false,
        }
    }
}

fn stop_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCall => "tool_use",
    }
}

fn content_blocks(c: &Completion) -> Value {
    match &c.output {
        Output::Text(_) => json!([{ "type": "text", "text": c.text() }]),
        Output::ToolCall {
            id,
            name,
            arguments,
        } => {
            json!([{ "type": "tool_use", "id": id, "name": name, "input": serde_json::from_str::<Value>(arguments).unwrap_or(Value::Null) }])
        }
    }
}

async fn messages(
    State(state): State<SharedState>,
    Directives(faults): Directives,
    body: Bytes,
) -> Response {
    if let Some(failure) = inject(Dialect::Anthropic, &faults, &state).await {
        return failure;
    }
    let request: MessagesRequest = match parse(Dialect::Anthropic, &body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if request.max_tokens.is_none() {
        return error(
            Dialect::Anthropic,
            StatusCode::BAD_REQUEST,
            "max_tokens: Field required",
        );
    }
    let completion = complete(&request.prompt(), faults.completion_tokens);
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    if !request.stream {
        return Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": request.model,
            "content": content_blocks(&completion),
            "stop_reason": stop_reason(&completion.finish), "stop_sequence": null,
            "usage": { "input_tokens": completion.prompt_tokens, "output_tokens": completion.completion_tokens,
                       "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0 },
        }))
        .into_response();
    }
    let event = |name: &str, value: Value| Event::default().event(name).data(value.to_string());
    let mut events = vec![event(
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": request.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": completion.prompt_tokens, "output_tokens": 1, "cache_read_input_tokens": 0 },
        }}),
    )];
    match &completion.output {
        Output::Text(_) => {
            events.push(event("content_block_start", json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })));
            events.push(event("ping", json!({ "type": "ping" })));
            for piece in completion.pieces() {
                events.push(event("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } })));
            }
        }
        Output::ToolCall {
            id,
            name,
            arguments,
        } => {
            events.push(event("content_block_start", json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "tool_use", "id": id, "name": name, "input": {} } })));
            events.push(event("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "input_json_delta", "partial_json": arguments } })));
        }
    }
    events.push(event(
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": 0 }),
    ));
    events.push(event(
        "message_delta",
        json!({ "type": "message_delta",
        "delta": { "stop_reason": stop_reason(&completion.finish), "stop_sequence": null },
        "usage": { "output_tokens": completion.completion_tokens } }),
    ));
    events.push(event("message_stop", json!({ "type": "message_stop" })));
    Sse::new(paced(events, &faults)).into_response()
}
