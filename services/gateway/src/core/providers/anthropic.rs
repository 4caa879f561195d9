//! The Anthropic adapter: OpenAI chat requests become Messages API requests (`POST
//! /v1/messages`), and Anthropic's answers and named-event streams become OpenAI completions
//! and chunks. Usage counts cached prompt tokens (read and written) as input.

use std::time::Duration;

use std::collections::HashMap;
use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use super::http::{error_object_message, post_to, secret_header, send, send_json};
use super::shape::{
    self, Answer, ToolChoice, arguments_object, count, data_url, function_tools, is_system,
    merge_turns, messages, role, stop_sequences, system_text, tool_call, unix_now,
};
use super::sse::{self, Flow, SseEvent, Translate};
use super::{ChunkStream, Completion, StreamEvent, Upstream, UpstreamError, Usage};

/// The Messages API version this adapter speaks.
const API_VERSION: &str = "2023-06-01";

/// Anthropic requires `max_tokens`; this is what we ask for when the client did not say.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A chat completion through the Messages API.
pub async fn chat(
    http: &reqwest::Client,
    upstream: &Upstream,
    body: &Value,
) -> Result<Completion, UpstreamError> {
    let request = post(http, upstream)?.json(&request(body, false)?);
    let answer = send_json(request, upstream.api_key.as_ref()).await?;
    completion(answer)
}

/// A streamed chat completion through the Messages API.
pub async fn chat_stream(
    http: &reqwest::Client,
    upstream: &Upstream,
    body: &Value,
    idle: Duration,
) -> Result<ChunkStream, UpstreamError> {
    let request = post(http, upstream)?.json(&request(body, true)?);
    let response = send(request, upstream.api_key.as_ref()).await?;
    Ok(sse::translate(response, Events::default(), idle))
}

fn post(
    http: &reqwest::Client,
    upstream: &Upstream,
) -> Result<reqwest::RequestBuilder, UpstreamError> {
    let mut request =
        post_to(http, &upstream.base_url, "v1/messages").header("anthropic-version", API_VERSION);
    if let Some(key) = &upstream.api_key {
        request = request.header("x-api-key", secret_header(key)?);
    }
    Ok(request)
}

/// The Messages request for the client's OpenAI `body`.
fn request(body: &Value, stream: bool) -> Result<Value, UpstreamError> {
    let mut request = Map::new();
    request.insert("model".into(), shape::model(body)?.into());
    let max_tokens = shape::max_tokens(body).unwrap_or(DEFAULT_MAX_TOKENS);
    request.insert("max_tokens".into(), max_tokens.into());
    if let Some(system) = system_text(body) {
        request.insert("system".into(), system.into());
    }
    request.insert("messages".into(), translate_messages(body));
    // OpenAI's temperature goes to 2, Anthropic's to 1.
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        request.insert("temperature".into(), t.clamp(0.0, 1.0).into());
    }
    if let Some(top_p) = body.get("top_p").filter(|v| v.is_number()) {
        request.insert("top_p".into(), top_p.clone());
    }
    if let Some(stop) = stop_sequences(body) {
        request.insert("stop_sequences".into(), stop);
    }
    let tools = tools(body);
    if !tools.is_empty() {
        request.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = translate_tool_choice(body) {
            request.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        request.insert("metadata".into(), json!({ "user_id": user }));
    }
    if stream {
        request.insert("stream".into(), true.into());
    }
    Ok(Value::Object(request))
}

/// The conversation as Anthropic messages: system messages leave it, tool results become user
/// `tool_result` blocks, and turns of the same role merge (Anthropic wants them alternating,
/// with every result of one assistant turn in the next user message).
fn translate_messages(body: &Value) -> Value {
    let turns = messages(body)
        .iter()
        .filter(|m| !is_system(m))
        .map(|message| match role(message) {
            "assistant" => ("assistant", assistant_blocks(message)),
            "tool" => ("user", vec![tool_result(message)]),
            _ => ("user", content_blocks(message.get("content"))),
        });
    merge_turns(turns)
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect()
}

/// Text and image blocks of an OpenAI content value (empty text is left out: Anthropic
/// refuses it).
fn content_blocks(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(text)) if !text.is_empty() => {
            vec![json!({ "type": "text", "text": text })]
        }
        Some(Value::Array(parts)) => parts.iter().filter_map(content_block).collect(),
        _ => Vec::new(),
    }
}

fn content_block(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str)? {
        "text" => {
            let text = part.get("text").and_then(Value::as_str)?;
            (!text.is_empty()).then(|| json!({ "type": "text", "text": text }))
        }
        "image_url" => {
            let url = part.pointer("/image_url/url").and_then(Value::as_str)?;
            let source = match data_url(url) {
                Some((media_type, data)) => {
                    json!({ "type": "base64", "media_type": media_type, "data": data })
                }
                None => json!({ "type": "url", "url": url }),
            };
            Some(json!({ "type": "image", "source": source }))
        }
        _ => None,
    }
}

/// An assistant turn: its text, then its tool calls as `tool_use` blocks.
fn assistant_blocks(message: &Value) -> Vec<Value> {
    let mut blocks = content_blocks(message.get("content"));
    let calls = message.get("tool_calls").and_then(Value::as_array);
    blocks.extend(calls.into_iter().flatten().map(|call| {
        json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or_default(),
            "name": call.pointer("/function/name").cloned().unwrap_or_default(),
            "input": arguments_object(call),
        })
    }));
    blocks
}

/// A `role: tool` message as a `tool_result` block.
fn tool_result(message: &Value) -> Value {
    json!({
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id").cloned().unwrap_or_default(),
        "content": shape::text(message.get("content")),
    })
}

/// Function tools as Anthropic tools (`parameters` become `input_schema`).
fn tools(body: &Value) -> Vec<Value> {
    function_tools(body)
        .into_iter()
        .map(|(name, description, parameters)| {
            let mut tool = json!({
                "name": name,
                "input_schema": parameters.cloned().unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
            });
            if let Some(description) = description {
                tool["description"] = description.clone();
            }
            tool
        })
        .collect()
}

/// `tool_choice` (and `parallel_tool_calls: false`) as Anthropic's `tool_choice`.
fn translate_tool_choice(body: &Value) -> Option<Value> {
    let serial = body.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let mut choice = match shape::tool_choice(body) {
        Some(ToolChoice::None) => return Some(json!({ "type": "none" })),
        Some(ToolChoice::Required) => json!({ "type": "any" }),
        Some(ToolChoice::Function(name)) => json!({ "type": "tool", "name": name }),
        Some(ToolChoice::Auto) => json!({ "type": "auto" }),
        None if serial => json!({ "type": "auto" }),
        None => return None,
    };
    if serial {
        choice["disable_parallel_tool_use"] = true.into();
    }
    Some(choice)
}

/// An Anthropic message as a `chat.completion`.
fn completion(answer: Value) -> Result<Completion, UpstreamError> {
    let blocks = answer
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| UpstreamError::Protocol("the answer has no content".to_owned()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(tool_call(
                block.get("id").and_then(Value::as_str).unwrap_or(""),
                block.get("name").and_then(Value::as_str).unwrap_or(""),
                block
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            )),
            _ => {} // thinking and server-tool blocks have no OpenAI counterpart
        }
    }
    let usage = usage_of(
        answer.get("usage").unwrap_or(&Value::Null),
        Usage::default(),
    );
    let finish = finish_reason(answer.get("stop_reason").and_then(Value::as_str));
    let message = shape::assistant_message(text, calls);
    let body = answer_of(&answer).completion(message, finish, usage);
    Ok(Completion::of(&body, usage))
}

/// The id and model of an Anthropic message.
fn answer_of(message: &Value) -> Answer {
    let field = |name| {
        message
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Answer {
        id: field("id"),
        created: unix_now(),
        model: field("model"),
    }
}

/// Anthropic's usage over `previous`: the input is fresh plus cached (read and written)
/// tokens; a stream's later events repeat only the counts that changed.
fn usage_of(usage: &Value, previous: Usage) -> Usage {
    let mut next = previous;
    if usage.get("input_tokens").is_some_and(Value::is_i64) {
        let cached = count(usage, &["cache_read_input_tokens"]);
        next.input_tokens = count(usage, &["input_tokens"])
            + cached
            + count(usage, &["cache_creation_input_tokens"]);
        next.cached_input_tokens = cached;
    }
    if usage.get("output_tokens").is_some_and(Value::is_i64) {
        next.output_tokens = count(usage, &["output_tokens"]);
    }
    next
}

fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}

/// Reads Anthropic's stream: `message_start` … `message_stop`.
#[derive(Default)]
struct Events {
    answer: Answer,
    usage: Usage,
    /// Anthropic content block index → OpenAI tool call index.
    tool_calls: HashMap<u64, usize>,
}

impl Translate for Events {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, UpstreamError> {
        let data = event.json()?;
        match data.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let message = data.get("message").unwrap_or(&Value::Null);
                self.answer = answer_of(message);
                self.usage = usage_of(message.get("usage").unwrap_or(&Value::Null), self.usage);
                out.push_back(self.answer.role_chunk());
                out.push_back(StreamEvent::Usage(self.usage));
            }
            Some("content_block_start") => self.block_start(&data, out),
            Some("content_block_delta") => self.block_delta(&data, out),
            Some("message_delta") => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push_back(self.answer.finish_chunk(finish_reason(Some(reason))));
                }
                if let Some(usage) = data.get("usage") {
                    self.usage = usage_of(usage, self.usage);
                    out.push_back(StreamEvent::Usage(self.usage));
                }
            }
            Some("message_stop") => return Ok(Flow::Done),
            Some("error") => return Err(stream_error(data.get("error").unwrap_or(&data))),
            _ => {} // ping, content_block_stop, and events added later
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self) -> Result<(), UpstreamError> {
        Err(UpstreamError::Protocol(
            "the stream ended before message_stop".to_owned(),
        ))
    }
}

impl Events {
    fn block_start(&mut self, data: &Value, out: &mut VecDeque<StreamEvent>) {
        let Some(block) = data.get("content_block") else {
            return;
        };
        let str_of = |name| block.get(name).and_then(Value::as_str).unwrap_or("");
        match str_of("type") {
            "text" if !str_of("text").is_empty() => {
                out.push_back(self.answer.text_chunk(str_of("text")));
            }
            "tool_use" => {
                let index = self.tool_calls.len();
                let block_index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                self.tool_calls.insert(block_index, index);
                out.push_back(
                    self.answer
                        .tool_call_chunk(index, str_of("id"), str_of("name"), ""),
                );
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, data: &Value, out: &mut VecDeque<StreamEvent>) {
        let Some(delta) = data.get("delta") else {
            return;
        };
        let str_of = |name| delta.get(name).and_then(Value::as_str).unwrap_or("");
        match str_of("type") {
            "text_delta" => out.push_back(self.answer.text_chunk(str_of("text"))),
            "input_json_delta" if !str_of("partial_json").is_empty() => {
                let block_index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(index) = self.tool_calls.get(&block_index) {
                    out.push_back(self.answer.arguments_chunk(*index, str_of("partial_json")));
                }
            }
            _ => {} // thinking and signature deltas
        }
    }
}

/// An `error` event, with the status its type stands for.
fn stream_error(error: &Value) -> UpstreamError {
    let status = match error.get("type").and_then(Value::as_str) {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("overloaded_error") => 529,
        _ => 500,
    };
    UpstreamError::Status {
        status,
        message: error_object_message(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_system_tools_and_tool_results_translates() {
        let body = json!({
            "model": "claude", "max_completion_tokens": 100, "temperature": 1.5, "top_p": 0.9,
            "stop": "END", "user": "u1", "parallel_tool_calls": false,
            "tool_choice": { "type": "function", "function": { "name": "lookup" } },
            "tools": [{ "type": "function", "function": { "name": "lookup", "description": "Finds",
                        "parameters": { "type": "object", "properties": { "q": { "type": "string" } } } } }],
            "messages": [
                { "role": "system", "content": "be brief" },
                { "role": "developer", "content": [{ "type": "text", "text": "and kind" }] },
                { "role": "user", "content": [{ "type": "text", "text": "find" },
                    { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } }] },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "c1", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":\"a\"}" } },
                    { "id": "c2", "type": "function", "function": { "name": "lookup", "arguments": "oops" } }] },
                { "role": "tool", "tool_call_id": "c1", "content": "one" },
                { "role": "tool", "tool_call_id": "c2", "content": [{ "type": "text", "text": "two" }] },
                { "role": "user", "content": "thanks" },
            ],
        });
        let request = request(&body, true).unwrap();
        assert_eq!(
            request,
            json!({
                "model": "claude", "max_tokens": 100, "system": "be brief\n\nand kind",
                "temperature": 1.0, "top_p": 0.9, "stop_sequences": ["END"], "stream": true,
                "metadata": { "user_id": "u1" },
                "tools": [{ "name": "lookup", "description": "Finds",
                            "input_schema": { "type": "object", "properties": { "q": { "type": "string" } } } }],
                "tool_choice": { "type": "tool", "name": "lookup", "disable_parallel_tool_use": true },
                "messages": [
                    { "role": "user", "content": [{ "type": "text", "text": "find" },
                        { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "AAAA" } }] },
                    { "role": "assistant", "content": [
                        { "type": "tool_use", "id": "c1", "name": "lookup", "input": { "q": "a" } },
                        { "type": "tool_use", "id": "c2", "name": "lookup", "input": {} }] },
                    { "role": "user", "content": [
                        { "type": "tool_result", "tool_use_id": "c1", "content": "one" },
                        { "type": "tool_result", "tool_use_id": "c2", "content": "two" },
                        { "type": "text", "text": "thanks" }] },
                ],
            })
        );
    }

    #[test]
    fn max_tokens_defaults_and_a_model_is_required() {
        let request = request(&json!({ "model": "m", "messages": [] }), false).unwrap();
        assert_eq!(request["max_tokens"], 4096);
        assert!(request.get("stream").is_none());
        assert!(super::request(&json!({ "messages": [] }), false).is_err());
    }

    #[test]
    fn tool_choices_translate() {
        let with = |choice: Value| translate_tool_choice(&json!({ "tool_choice": choice }));
        assert_eq!(with(json!("auto")), Some(json!({ "type": "auto" })));
        assert_eq!(with(json!("required")), Some(json!({ "type": "any" })));
        assert_eq!(with(json!("none")), Some(json!({ "type": "none" })));
        assert_eq!(translate_tool_choice(&json!({})), None);
    }

    #[test]
    fn an_answer_translates_back_with_cached_usage() {
        let answer = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{ "type": "text", "text": "Let me look." },
                        { "type": "tool_use", "id": "tu_1", "name": "lookup", "input": { "q": "a" } }],
            "stop_reason": "tool_use",
            "usage": { "input_tokens": 10, "cache_read_input_tokens": 90,
                       "cache_creation_input_tokens": 5, "output_tokens": 7 },
        });
        let done = completion(answer).unwrap();
        assert_eq!(
            done.usage,
            Usage {
                input_tokens: 105,
                cached_input_tokens: 90,
                output_tokens: 7
            }
        );
        let body = done.json();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "msg_1");
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(body["choices"][0]["message"]["content"], "Let me look.");
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"],
            json!([{ "id": "tu_1", "type": "function",
                     "function": { "name": "lookup", "arguments": "{\"q\":\"a\"}" } }])
        );
        assert_eq!(body["usage"]["total_tokens"], 112);
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 90);
        assert!(completion(json!({ "type": "error" })).is_err());
    }

    fn feed(events: &mut Events, data: Value) -> (Result<Flow, UpstreamError>, Vec<StreamEvent>) {
        let mut out = VecDeque::new();
        let flow = events.event(
            SseEvent {
                event: None,
                data: data.to_string(),
            },
            &mut out,
        );
        (flow, out.into())
    }

    #[test]
    fn a_streamed_tool_call_translates() {
        let mut events = Events::default();
        let (_, out) = feed(
            &mut events,
            json!({ "type": "message_start", "message": { "id": "msg_1", "model": "claude",
                    "usage": { "input_tokens": 4, "cache_read_input_tokens": 6, "output_tokens": 1 } } }),
        );
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[0], StreamEvent::Chunk(c) if c["choices"][0]["delta"]["role"] == "assistant" && c["id"] == "msg_1")
        );
        assert_eq!(
            out[1],
            StreamEvent::Usage(Usage {
                input_tokens: 10,
                cached_input_tokens: 6,
                output_tokens: 1
            })
        );
        let (_, out) = feed(
            &mut events,
            json!({ "type": "content_block_start", "index": 1,
                    "content_block": { "type": "tool_use", "id": "tu_1", "name": "lookup", "input": {} } }),
        );
        let StreamEvent::Chunk(chunk) = &out[0] else {
            panic!()
        };
        assert_eq!(
            chunk["choices"][0]["delta"]["tool_calls"],
            json!([{ "index": 0, "id": "tu_1", "type": "function", "function": { "name": "lookup", "arguments": "" } }])
        );
        let (_, out) = feed(
            &mut events,
            json!({ "type": "content_block_delta", "index": 1,
                    "delta": { "type": "input_json_delta", "partial_json": "{\"q\":" } }),
        );
        let StreamEvent::Chunk(chunk) = &out[0] else {
            panic!()
        };
        assert_eq!(
            chunk["choices"][0]["delta"]["tool_calls"],
            json!([{ "index": 0, "function": { "arguments": "{\"q\":" } }])
        );
        let (_, out) = feed(
            &mut events,
            json!({ "type": "message_delta", "delta": { "stop_reason": "tool_use" },
                    "usage": { "output_tokens": 12 } }),
        );
        let StreamEvent::Chunk(chunk) = &out[0] else {
            panic!()
        };
        assert_eq!(chunk["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out[1],
            StreamEvent::Usage(Usage {
                input_tokens: 10,
                cached_input_tokens: 6,
                output_tokens: 12
            })
        );
        assert_eq!(
            feed(&mut events, json!({ "type": "message_stop" })).0,
            Ok(Flow::Done)
        );
    }

    #[test]
    fn an_error_event_is_a_status_error() {
        let (flow, out) = feed(
            &mut Events::default(),
            json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } }),
        );
        assert_eq!(
            flow,
            Err(UpstreamError::Status {
                status: 529,
                message: "Overloaded".to_owned()
            })
        );
        assert!(out.is_empty());
    }
}
