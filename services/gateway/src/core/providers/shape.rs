//! The OpenAI shapes the translating adapters (Anthropic, Gemini) read from clients and
//! answer in: request fields, `chat.completion` and `chat.completion.chunk` objects, usage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{StreamEvent, UpstreamError, Usage};

/// Seconds since the epoch, as OpenAI's `created`.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An id unique in this process and unlikely to repeat across processes (`call_…`).
pub(super) fn new_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{nanos:08x}{n:04x}", unix_now())
}

/// The integer at `path` (object keys, outermost first), or 0 when it is absent or not an
/// integer. (Not `Value::pointer`: it allocates for every segment, on every call.)
pub(super) fn count(value: &Value, path: &[&str]) -> i64 {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The model named by the client's request, required by the translating adapters.
pub(super) fn model(body: &Value) -> Result<&str, UpstreamError> {
    body.get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| UpstreamError::Status {
            status: 400,
            message: "the request names no model".to_owned(),
        })
}

/// The client's messages (none when the field is missing).
pub(super) fn messages(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A message's role ("" when missing).
pub(super) fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// The text of a content value: a string, or its text parts joined.
pub(super) fn text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The system prompt: the text of every `system` (and `developer`) message, in order.
pub(super) fn system_text(body: &Value) -> Option<String> {
    let parts: Vec<String> = messages(body)
        .iter()
        .filter(|m| is_system(m))
        .map(|m| text(m.get("content")))
        .filter(|t| !t.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// A system-prompt message (`developer` is the newer OpenAI name).
pub(super) fn is_system(message: &Value) -> bool {
    matches!(role(message), "system" | "developer")
}

/// Conversation turns with consecutive turns of one role merged, and empty turns left out:
/// Anthropic and Gemini want roles to alternate, and every result of one turn's tool calls
/// in a single following turn.
pub(super) fn merge_turns<'a>(
    turns: impl Iterator<Item = (&'a str, Vec<Value>)>,
) -> Vec<(&'a str, Vec<Value>)> {
    let mut merged: Vec<(&str, Vec<Value>)> = Vec::new();
    for (role, content) in turns {
        match merged.last_mut() {
            Some((last, previous)) if *last == role => previous.extend(content),
            _ if content.is_empty() => {}
            _ => merged.push((role, content)),
        }
    }
    merged
}

/// `max_completion_tokens`, else the older `max_tokens`.
pub(super) fn max_tokens(body: &Value) -> Option<u64> {
    body.get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
}

/// `stop` (a string or an array of them) as an array, if any.
pub(super) fn stop_sequences(body: &Value) -> Option<Value> {
    match body.get("stop")? {
        Value::String(s) => Some(json!([s])),
        Value::Array(items) if !items.is_empty() => Some(Value::Array(items.clone())),
        _ => None,
    }
}

/// The client's function tools as (name, description, parameters).
pub(super) fn function_tools(body: &Value) -> Vec<(&Value, Option<&Value>, Option<&Value>)> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("function"))
                .filter_map(|f| {
                    let name = f.get("name")?;
                    Some((name, f.get("description"), f.get("parameters")))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the client's `tool_choice` asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ToolChoice<'a> {
    Auto,
    None,
    Required,
    Function(&'a str),
}

/// The client's `tool_choice`, if it gave a readable one.
pub(super) fn tool_choice(body: &Value) -> Option<ToolChoice<'_>> {
    match body.get("tool_choice")? {
        Value::String(s) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => None,
        },
        choice => choice
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(ToolChoice::Function),
    }
}

/// A tool call's arguments (a JSON string in the OpenAI format) as an object.
pub(super) fn arguments_object(call: &Value) -> Value {
    call.pointer("/function/arguments")
        .and_then(Value::as_str)
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// An image part's URL split into (media type, base64 data) when it is a `data:` URL.
pub(super) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (media_type, data) = rest.split_once(";base64,")?;
    Some((media_type, data))
}

/// The usage object of a `chat.completion`.
pub(super) fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": { "cached_tokens": usage.cached_input_tokens },
    })
}

/// An assistant message: `content` null when there is no text, `tool_calls` when any.
pub(super) fn assistant_message(text: String, tool_calls: Vec<Value>) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    message
}

/// One complete OpenAI tool call.
pub(super) fn tool_call(id: &str, name: &str, arguments: String) -> Value {
    json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } })
}

/// Who answered: the id, time and model every object of one answer shares.
#[derive(Debug, Clone, Default)]
pub(super) struct Answer {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Answer {
    /// A whole `chat.completion`.
    pub fn completion(&self, message: Value, finish_reason: &str, usage: Usage) -> Value {
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason, "logprobs": null }],
            "usage": usage_json(usage),
        })
    }

    /// A `chat.completion.chunk` carrying `delta`.
    pub fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> StreamEvent {
        StreamEvent::Chunk(json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null }],
        }))
    }

    /// The first chunk, as OpenAI sends it: the role and empty content.
    pub fn role_chunk(&self) -> StreamEvent {
        self.chunk(json!({ "role": "assistant", "content": "" }), None)
    }

    /// A chunk with a piece of text.
    pub fn text_chunk(&self, text: &str) -> StreamEvent {
        self.chunk(json!({ "content": text }), None)
    }

    /// A chunk opening tool call number `index` (its arguments may follow in pieces).
    pub fn tool_call_chunk(
        &self,
        index: usize,
        id: &str,
        name: &str,
        arguments: &str,
    ) -> StreamEvent {
        self.chunk(
            json!({ "tool_calls": [{ "index": index, "id": id, "type": "function",
                                     "function": { "name": name, "arguments": arguments } }] }),
            None,
        )
    }

    /// A chunk with a piece of tool call number `index`'s arguments.
    pub fn arguments_chunk(&self, index: usize, arguments: &str) -> StreamEvent {
        self.chunk(
            json!({ "tool_calls": [{ "index": index, "function": { "arguments": arguments } }] }),
            None,
        )
    }

    /// The last chunk: an empty delta and why the answer ended.
    pub fn finish_chunk(&self, finish_reason: &str) -> StreamEvent {
        self.chunk(json!({}), Some(finish_reason))
    }
}
