//! The Gemini dialect: `POST /v1beta/models/{model}:generateContent` and
//! `…:streamGenerateContent`, which streams SSE with `?alt=sse` and otherwise a JSON array,
//! as the real API does. Every chunk carries `usageMetadata` with the counts so far.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Dialect, Directives, SharedState, data, error, inject, paced, parse};
use crate::core::completion::{Completion, Finish, Output, Prompt, complete};

pub fn router() -> Router<SharedState> {
    // The model and the method share one path segment (`mock-gemini-flash:generateContent`).
    Router::new().route("/v1beta/models/{model_and_method}", post(generate))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    contents: Vec<Content>,
    system_instruction: Option<Content>,
    generation_config: Option<GenerationConfig>,
    #[serde(default)]
    tools: Vec<Value>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    max_output_tokens: Option<u32>,
    response_mime_type: Option<String>,
}

#[derive(Deserialize)]
struct StreamQuery {
    alt: Option<String>,
}

fn text_of(content: &Content) -> String {
    content
        .parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

impl GenerateRequest {
    fn prompt(&self) -> Prompt {
        let mut texts: Vec<String> = self.system_instruction.iter().map(text_of).collect();
        texts.extend(self.contents.iter().map(text_of));
        let tools = self
            .tools
            .iter()
            .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
            .flatten()
            .filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let after_tool_result = self
            .contents
            .last()
            .is_some_and(|c| c.parts.iter().any(|p| p.get("functionResponse").is_some()));
        let config = self.generation_config.as_ref();
        Prompt {
            texts,
            max_tokens: config.and_then(|g| g.max_output_tokens),
            tools,
            forced_tool: None,
            after_tool_result,
            json_output: config
                .and_then(|g| g.response_mime_type.as_deref())
                .is_some_and(|m| m == "application/json"),
        }
    }
}

fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::ToolCall => "STOP",
        Finish::Length => "MAX_TOKENS",
    }
}

fn usage(prompt_tokens: u32, candidates_tokens: u32) -> Value {
    json!({ "promptTokenCount": prompt_tokens, "candidatesTokenCount": candidates_tokens, "totalTokenCount": prompt_tokens + candidates_tokens })
}

fn response(model: &str, parts: Value, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    json!({ "candidates": [candidate], "usageMetadata": usage, "modelVersion": model })
}

/// The chunks of a streamed answer, each with the usage so far.
fn chunks(model: &str, c: &Completion) -> Vec<Value> {
    match &c.output {
        Output::Text(_) => {
            let pieces = c.pieces();
            let last = pieces.len().saturating_sub(1);
            pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| {
                    let sent = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    response(
                        model,
                        json!([{ "text": piece }]),
                        (i == last).then(|| finish_reason(&c.finish)),
                        usage(c.prompt_tokens, sent),
                    )
                })
                .collect()
        }
        Output::ToolCall { .. } => vec![response(
            model,
            parts(c),
            Some(finish_reason(&c.finish)),
            usage(c.prompt_tokens, c.completion_tokens),
        )],
    }
}

fn parts(c: &Completion) -> Value {
    match &c.output {
        Output::Text(_) => json!([{ "text": c.text() }]),
        Output::ToolCall {
            name, arguments, ..
        } => {
            json!([{ "functionCall": { "name": name, "args": serde_json::from_str::<Value>(arguments).unwrap_or(Value::Null) } }])
        }
    }
}

async fn generate(
    State(state): State<SharedState>,
    Directives(faults): Directives,
    Path(params): Path<std::collections::HashMap<String, String>>,
    Query(query): Query<StreamQuery>,
    body: Bytes,
) -> Response {
    let Some((model, method)) = params
        .get("model_and_method")
        .and_then(|p| p.split_once(':'))
    else {
        return error(
            Dialect::Gemini,
            StatusCode::NOT_FOUND,
            "expected /v1beta/models/{model}:generateContent or :streamGenerateContent",
        );
    };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        other => {
            return error(
                Dialect::Gemini,
                StatusCode::NOT_FOUND,
                &format!("unknown method {other:?}"),
            );
        }
    };
    if let Some(failure) = inject(Dialect::Gemini, &faults, &state).await {
        return failure;
    }
    let request: GenerateRequest = match parse(Dialect::Gemini, &body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let completion = complete(&request.prompt(), faults.completion_tokens);
    if !stream {
        let usage = usage(completion.prompt_tokens, completion.completion_tokens);
        return Json(response(
            model,
            parts(&completion),
            Some(finish_reason(&completion.finish)),
            usage,
        ))
        .into_response();
    }
    let chunks = chunks(model, &completion);
    if query.alt.as_deref() == Some("sse") {
        return Sse::new(paced(chunks.iter().map(data).collect(), &faults)).into_response();
    }
    // Without alt=sse, Gemini streams one JSON array, element by element.
    let last = chunks.len().saturating_sub(1);
    let pieces: Vec<Bytes> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Bytes::from(format!(
                "{}{c}{}",
                if i == 0 { "[" } else { "," },
                if i == last { "]" } else { "" }
            ))
        })
        .collect();
    let body = paced(pieces, &faults);
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}
