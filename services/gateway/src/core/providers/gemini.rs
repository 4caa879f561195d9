//! The Gemini adapter: OpenAI chat requests become `generateContent` requests (streamed with
//! `streamGenerateContent?alt=sse`), and Gemini's responses become OpenAI completions and
//! chunks. Gemini has no tool call ids, so the adapter makes them up and maps them back to
//! function names from the conversation.

use std::time::Duration;

use std::collections::HashMap;
use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use super::http::{post_to, secret_header, send, send_json, stream_error};
use super::shape::{
    self, Answer, ToolChoice, arguments_object, count, data_url, function_tools, is_system,
    merge_turns, messages, new_id, role, stop_sequences, system_text, tool_call, unix_now,
};
use super::sse::{self, Flow, SseEvent, Translate};
use super::{ChunkStream, Completion, StreamEvent, Upstream, UpstreamError, Usage};

/// A chat completion through `generateContent`.
pub async fn chat(
    http: &reqwest::Client,
    upstream: &Upstream,
    body: &Value,
) -> Result<Completion, UpstreamError> {
    let model = shape::model(body)?;
    let request = post(http, upstream, model, "generateContent")?.json(&request(body));
    let answer = send_json(request, upstream.api_key.as_ref()).await?;
    completion(answer, model)
}

/// A streamed chat completion through `streamGenerateContent`, as SSE.
pub async fn chat_stream(
    http: &reqwest::Client,
    upstream: &Upstream,
    body: &Value,
    idle: Duration,
) -> Result<ChunkStream, UpstreamError> {
    let model = shape::model(body)?;
    let request =
        post(http, upstream, model, "streamGenerateContent?alt=sse")?.json(&request(body));
    let response = send(request, upstream.api_key.as_ref()).await?;
    Ok(sse::translate(response, Events::new(model), idle))
}

/// A POST to `method` of `model` (`models/…` is implied unless the name has its own
/// collection, as tuned models do).
fn post(
    http: &reqwest::Client,
    upstream: &Upstream,
    model: &str,
    method: &str,
) -> Result<reqwest::RequestBuilder, UpstreamError> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let resource = if model.contains('/') {
        format!("v1beta/{model}:{method}")
    } else {
        format!("v1beta/models/{model}:{method}")
    };
    let mut request = post_to(http, &upstream.base_url, &resource);
    if let Some(key) = &upstream.api_key {
        request = request.header("x-goog-api-key", secret_header(key)?);
    }
    Ok(request)
}

/// The `generateContent` request for the client's OpenAI `body`.
fn request(body: &Value) -> Value {
    let mut request = Map::new();
    request.insert("contents".into(), contents(body));
    if let Some(system) = system_text(body) {
        request.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": system }] }),
        );
    }
    let config = generation_config(body);
    if !config.is_empty() {
        request.insert("generationConfig".into(), Value::Object(config));
    }
    let declarations: Vec<Value> = function_tools(body)
        .into_iter()
        .map(|(name, description, parameters)| {
            let mut declaration = json!({ "name": name });
            if let Some(description) = description {
                declaration["description"] = description.clone();
            }
            if let Some(parameters) = parameters {
                declaration["parameters"] = parameters.clone();
            }
            declaration
        })
        .collect();
    if !declarations.is_empty() {
        request.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(config) = tool_config(body) {
            request.insert("toolConfig".into(), config);
        }
    }
    Value::Object(request)
}

/// Sampling settings, in Gemini's names.
fn generation_config(body: &Value) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(max) = shape::max_tokens(body) {
        config.insert("maxOutputTokens".into(), max.into());
    }
    for (openai, gemini) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(value) = body.get(openai).filter(|v| v.is_number()) {
            config.insert(gemini.into(), value.clone());
        }
    }
    if let Some(stop) = stop_sequences(body) {
        config.insert("stopSequences".into(), stop);
    }
    let format = body.get("response_format");
    match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(schema) = format.and_then(|f| f.pointer("/json_schema/schema")) {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
        _ => {}
    }
    config
}

/// `tool_choice` as Gemini's function calling mode.
fn tool_config(body: &Value) -> Option<Value> {
    let config = match shape::tool_choice(body)? {
        ToolChoice::Auto => json!({ "mode": "AUTO" }),
        ToolChoice::None => json!({ "mode": "NONE" }),
        ToolChoice::Required => json!({ "mode": "ANY" }),
        ToolChoice::Function(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
    };
    Some(json!({ "functionCallingConfig": config }))
}

/// The conversation as Gemini contents (roles `user` and `model`): tool results become
/// `functionResponse` parts named after the call they answer, and turns of the same role
/// merge (every response to one turn's calls must come in one content).
fn contents(body: &Value) -> Value {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let turns = messages(body)
        .iter()
        .filter(|m| !is_system(m))
        .map(|message| match role(message) {
            "assistant" => ("model", model_parts(message, &mut names)),
            "tool" => ("user", vec![function_response(message, &names)]),
            _ => ("user", parts(message.get("content"))),
        });
    merge_turns(turns)
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect()
}

/// Text and image parts of an OpenAI content value.
fn parts(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(text)) if !text.is_empty() => vec![json!({ "text": text })],
        Some(Value::Array(parts)) => parts.iter().filter_map(part).collect(),
        _ => Vec::new(),
    }
}

fn part(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str)? {
        "text" => {
            let text = part.get("text").and_then(Value::as_str)?;
            (!text.is_empty()).then(|| json!({ "text": text }))
        }
        "image_url" => {
            let url = part.pointer("/image_url/url").and_then(Value::as_str)?;
            Some(match data_url(url) {
                Some((mime_type, data)) => {
                    json!({ "inlineData": { "mimeType": mime_type, "data": data } })
                }
                None => json!({ "fileData": { "fileUri": url } }),
            })
        }
        _ => None,
    }
}

/// An assistant turn: its text, then its tool calls as `functionCall` parts (whose names are
/// remembered for the results that follow).
fn model_parts<'a>(message: &'a Value, names: &mut HashMap<&'a str, &'a str>) -> Vec<Value> {
    let mut parts = parts(message.get("content"));
    let calls = message.get("tool_calls").and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            names.insert(id, name);
        }
        parts.push(json!({ "functionCall": { "name": name, "args": arguments_object(call) } }));
    }
    parts
}

/// A `role: tool` message as a `functionResponse` part. Gemini wants an object: a JSON object
/// result goes as is, anything else under `content`.
fn function_response(message: &Value, names: &HashMap<&str, &str>) -> Value {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let text = shape::text(message.get("content"));
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => json!({ "content": other }),
        Err(_) => json!({ "content": text }),
    };
    let name = names.get(id).copied().unwrap_or(id);
    json!({ "functionResponse": { "name": name, "response": response } })
}

/// A `generateContent` response as a `chat.completion`.
fn completion(answer: Value, model: &str) -> Result<Completion, UpstreamError> {
    if answer.get("candidates").is_none() && answer.get("promptFeedback").is_none() {
        return Err(UpstreamError::Protocol(
            "the answer has neither candidates nor prompt feedback".to_owned(),
        ));
    }
    let candidate = answer.pointer("/candidates/0");
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in candidate_parts(candidate) {
        match Piece::of(part) {
            Some(Piece::Text(piece)) => text.push_str(piece),
            Some(Piece::Call { id, name, args }) => calls.push(tool_call(&id, name, args)),
            None => {}
        }
    }
    let finish = finish_reason(candidate, !calls.is_empty());
    let usage = usage_of(answer.get("usageMetadata"));
    let message = shape::assistant_message(text, calls);
    let body = answer_of(&answer, model).completion(message, finish, usage);
    Ok(Completion::of(&body, usage))
}

/// The id and model of a response (Gemini may send neither; then ours).
fn answer_of(response: &Value, model: &str) -> Answer {
    let field = |name| response.get(name).and_then(Value::as_str);
    Answer {
        id: field("responseId").map_or_else(|| new_id("chatcmpl-"), str::to_owned),
        created: unix_now(),
        model: field("modelVersion").unwrap_or(model).to_owned(),
    }
}

fn candidate_parts(candidate: Option<&Value>) -> &[Value] {
    candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// What a response part says, in OpenAI terms.
enum Piece<'a> {
    Text(&'a str),
    Call {
        id: String,
        name: &'a str,
        args: String,
    },
}

impl<'a> Piece<'a> {
    /// A part's text or function call; thoughts and other parts are not passed on.
    fn of(part: &'a Value) -> Option<Self> {
        if let Some(call) = part.get("functionCall") {
            return Some(Piece::Call {
                id: call
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| new_id("call_"), str::to_owned),
                name: call.get("name").and_then(Value::as_str).unwrap_or(""),
                args: call
                    .get("args")
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            });
        }
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        part.get("text").and_then(Value::as_str).map(Piece::Text)
    }
}

/// Gemini's finish reason in OpenAI terms; `STOP` after function calls means `tool_calls`.
fn finish_reason(candidate: Option<&Value>, called: bool) -> &'static str {
    let Some(candidate) = candidate else {
        return "content_filter"; // no candidate: the prompt was blocked
    };
    match candidate.get("finishReason").and_then(Value::as_str) {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's `usageMetadata`: thinking tokens are output, cached content is part of the prompt.
fn usage_of(metadata: Option<&Value>) -> Usage {
    let Some(m) = metadata else {
        return Usage::default();
    };
    Usage {
        input_tokens: count(m, &["promptTokenCount"]) + count(m, &["toolUsePromptTokenCount"]),
        cached_input_tokens: count(m, &["cachedContentTokenCount"]),
        output_tokens: count(m, &["candidatesTokenCount"]) + count(m, &["thoughtsTokenCount"]),
    }
}

/// Reads Gemini's stream: every event is a whole response with the usage so far.
struct Events {
    answer: Answer,
    started: bool,
    tool_calls: usize,
    finished: bool,
}

impl Events {
    fn new(model: &str) -> Self {
        Self {
            answer: Answer {
                model: model.to_owned(),
                ..Answer::default()
            },
            started: false,
            tool_calls: 0,
            finished: false,
        }
    }
}

impl Translate for Events {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, UpstreamError> {
        let response = event.json()?;
        if let Some(error) = response.get("error") {
            return Err(stream_error(error));
        }
        if !self.started {
            self.started = true;
            self.answer = answer_of(&response, &self.answer.model);
            out.push_back(self.answer.role_chunk());
        }
        let candidate = response.pointer("/candidates/0");
        for part in candidate_parts(candidate) {
            match Piece::of(part) {
                Some(Piece::Text(text)) if !text.is_empty() => {
                    out.push_back(self.answer.text_chunk(text));
                }
                Some(Piece::Call { id, name, args }) => {
                    let index = self.tool_calls;
                    self.tool_calls += 1;
                    out.push_back(self.answer.tool_call_chunk(index, &id, name, &args));
                }
                _ => {}
            }
        }
        let ended = candidate.is_some_and(|c| c.get("finishReason").is_some())
            || (candidate.is_none() && response.get("promptFeedback").is_some());
        if ended && !self.finished {
            self.finished = true;
            let reason = finish_reason(candidate, self.tool_calls > 0);
            out.push_back(self.answer.finish_chunk(reason));
        }
        if let Some(metadata) = response.get("usageMetadata") {
            out.push_back(StreamEvent::Usage(usage_of(Some(metadata))));
        }
        // Gemini has no end marker: a last event may still bring usage, so read to the end.
        Ok(Flow::Continue)
    }

    fn end(&mut self) -> Result<(), UpstreamError> {
        if self.finished {
            Ok(())
        } else {
            Err(UpstreamError::Protocol(
                "the stream ended before a finish reason".to_owned(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_translates_with_system_config_tools_and_results() {
        let body = json!({
            "model": "gemini", "max_tokens": 50, "temperature": 0.5, "top_p": 0.9,
            "stop": ["END"], "response_format": { "type": "json_object" },
            "tool_choice": "required",
            "tools": [{ "type": "function", "function": { "name": "lookup", "description": "Finds",
                        "parameters": { "type": "object" } } }],
            "messages": [
                { "role": "system", "content": "be brief" },
                { "role": "user", "content": [{ "type": "text", "text": "find" },
                    { "type": "image_url", "image_url": { "url": "https://x/cat.png" } }] },
                { "role": "assistant", "content": "Looking.", "tool_calls": [
                    { "id": "c1", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":\"a\"}" } },
                    { "id": "c2", "type": "function", "function": { "name": "other", "arguments": "{}" } }] },
                { "role": "tool", "tool_call_id": "c1", "content": "{\"hits\":3}" },
                { "role": "tool", "tool_call_id": "c2", "content": "plain text" },
            ],
        });
        assert_eq!(
            request(&body),
            json!({
                "systemInstruction": { "parts": [{ "text": "be brief" }] },
                "generationConfig": { "maxOutputTokens": 50, "temperature": 0.5, "topP": 0.9,
                                      "stopSequences": ["END"], "responseMimeType": "application/json" },
                "tools": [{ "functionDeclarations": [{ "name": "lookup", "description": "Finds",
                                                      "parameters": { "type": "object" } }] }],
                "toolConfig": { "functionCallingConfig": { "mode": "ANY" } },
                "contents": [
                    { "role": "user", "parts": [{ "text": "find" }, { "fileData": { "fileUri": "https://x/cat.png" } }] },
                    { "role": "model", "parts": [{ "text": "Looking." },
                        { "functionCall": { "name": "lookup", "args": { "q": "a" } } },
                        { "functionCall": { "name": "other", "args": {} } }] },
                    { "role": "user", "parts": [
                        { "functionResponse": { "name": "lookup", "response": { "hits": 3 } } },
                        { "functionResponse": { "name": "other", "response": { "content": "plain text" } } }] },
                ],
            })
        );
    }

    #[test]
    fn a_json_schema_and_a_named_tool_translate() {
        let body = json!({ "model": "g", "messages": [],
            "tools": [{ "type": "function", "function": { "name": "f" } }],
            "tool_choice": { "type": "function", "function": { "name": "f" } },
            "response_format": { "type": "json_schema", "json_schema": { "name": "x", "schema": { "type": "object" } } } });
        let request = request(&body);
        assert_eq!(
            request["generationConfig"],
            json!({ "responseMimeType": "application/json", "responseJsonSchema": { "type": "object" } })
        );
        assert_eq!(
            request["toolConfig"],
            json!({ "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["f"] } })
        );
        assert!(request.get("systemInstruction").is_none());
    }

    #[test]
    fn a_response_translates_back() {
        let answer = json!({
            "candidates": [{ "content": { "role": "model", "parts": [
                { "text": "thinking…", "thought": true }, { "text": "Here" },
                { "functionCall": { "name": "lookup", "args": { "q": "a" } } }] },
                "finishReason": "STOP" }],
            "usageMetadata": { "promptTokenCount": 100, "cachedContentTokenCount": 60,
                               "candidatesTokenCount": 7, "thoughtsTokenCount": 3 },
            "modelVersion": "gemini-2.5-flash", "responseId": "r1",
        });
        let done = completion(answer, "gemini").unwrap();
        assert_eq!(
            done.usage,
            Usage {
                input_tokens: 100,
                cached_input_tokens: 60,
                output_tokens: 10
            }
        );
        let body = &done.json();
        assert_eq!(body["id"], "r1");
        assert_eq!(body["model"], "gemini-2.5-flash");
        assert_eq!(body["choices"][0]["message"]["content"], "Here");
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "lookup");
        assert_eq!(call["function"]["arguments"], "{\"q\":\"a\"}");
        assert!(call["id"].as_str().unwrap().starts_with("call_"));

        let blocked = completion(
            json!({ "promptFeedback": { "blockReason": "SAFETY" } }),
            "g",
        );
        assert_eq!(
            blocked.unwrap().json()["choices"][0]["finish_reason"],
            "content_filter"
        );
        assert!(completion(json!({ "what": 1 }), "g").is_err());
    }

    #[test]
    fn stream_events_translate_and_the_end_needs_a_finish() {
        let mut events = Events::new("gemini");
        let mut out = VecDeque::new();
        let feed = |events: &mut Events, value: Value, out: &mut VecDeque<StreamEvent>| {
            events.event(
                SseEvent {
                    event: None,
                    data: value.to_string(),
                },
                out,
            )
        };
        feed(
            &mut events,
            json!({ "candidates": [{ "content": { "parts": [{ "text": "Hi " }] } }],
                    "usageMetadata": { "promptTokenCount": 4, "candidatesTokenCount": 1 } }),
            &mut out,
        )
        .unwrap();
        assert!(events.end().is_err());
        feed(
            &mut events,
            json!({ "candidates": [{ "content": { "parts": [{ "text": "there" }] }, "finishReason": "MAX_TOKENS" }],
                    "usageMetadata": { "promptTokenCount": 4, "candidatesTokenCount": 2 } }),
            &mut out,
        )
        .unwrap();
        assert!(events.end().is_ok());
        let kinds: Vec<String> = out
            .iter()
            .map(|e| match e {
                StreamEvent::Chunk(c) => {
                    let choice = &c["choices"][0];
                    format!("{}|{}", choice["delta"], choice["finish_reason"])
                }
                StreamEvent::Usage(u) => format!("usage {} {}", u.input_tokens, u.output_tokens),
                StreamEvent::Passthrough { .. } => "passthrough".to_owned(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                r#"{"content":"","role":"assistant"}|null"#,
                r#"{"content":"Hi "}|null"#,
                "usage 4 1",
                r#"{"content":"there"}|null"#,
                r#"{}|"length""#,
                "usage 4 2",
            ]
        );
        let error = feed(
            &mut events,
            json!({ "error": { "code": 503, "message": "overloaded", "status": "UNAVAILABLE" } }),
            &mut out,
        );
        assert_eq!(
            error,
            Err(UpstreamError::Status {
                status: 503,
                message: "overloaded".to_owned()
            })
        );
    }
}
