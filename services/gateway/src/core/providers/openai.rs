//! The OpenAI adapter, for OpenAI and every upstream that speaks its format (Azure-style
//! deployments, vLLM, Ollama, mock-llm). Requests pass through unchanged, but a stream always
//! asks for usage; answers pass through too, with usage read from them.

use std::time::Duration;

use std::collections::VecDeque;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::http::{not_json, post_to, secret_header, send, send_bytes, stream_error};
use super::scan;
use super::sse::{self, Flow, SseEvent, Translate};
use super::{ChunkStream, Completion, StreamEvent, Upstream, UpstreamError, Usage};

/// A chat completion, passed through (the client's body as it sent it).
pub async fn chat(
    http: &reqwest::Client,
    upstream: &Upstream,
    body: &Bytes,
) -> Result<Completion, UpstreamError> {
    let body = send_bytes(
        json(post(http, upstream, "chat/completions")?, body),
        key(upstream),
    )
    .await?;
    let usage = usage_in(&body)?.unwrap_or_default();
    Ok(Completion { body, usage })
}

/// A streamed chat completion: `stream` forced on, with `stream_options.include_usage`.
pub async fn chat_stream(
    http: &reqwest::Client,
    upstream: &Upstream,
    body: &Value,
    idle: Duration,
) -> Result<ChunkStream, UpstreamError> {
    let fields = body
        .as_object()
        .ok_or_else(|| UpstreamError::Protocol("the request body is not an object".to_owned()))?;
    let request = post(http, upstream, "chat/completions")?.json(&Streaming(fields));
    let response = send(request, key(upstream)).await?;
    Ok(sse::translate(response, Chunks, idle))
}

/// Embeddings, passed through (the client's body as it sent it); they have input tokens only.
pub async fn embeddings(
    http: &reqwest::Client,
    upstream: &Upstream,
    body: &Bytes,
) -> Result<Completion, UpstreamError> {
    let body = send_bytes(
        json(post(http, upstream, "embeddings")?, body),
        key(upstream),
    )
    .await?;
    let usage = Usage {
        input_tokens: usage_in(&body)?.map_or(0, |u| u.input_tokens),
        ..Usage::default()
    };
    Ok(Completion { body, usage })
}

/// A JSON body already written.
fn json(request: reqwest::RequestBuilder, body: &Bytes) -> reqwest::RequestBuilder {
    request
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(body.clone())
}

fn key(upstream: &Upstream) -> Option<&secrecy::SecretString> {
    upstream.api_key.as_ref()
}

/// A POST to `path` under the base URL, with the key as this host expects it.
fn post(
    http: &reqwest::Client,
    upstream: &Upstream,
    path: &str,
) -> Result<reqwest::RequestBuilder, UpstreamError> {
    let request = post_to(http, &upstream.base_url, path);
    let Some(key) = &upstream.api_key else {
        return Ok(request);
    };
    let (name, value) = if is_azure(&upstream.base_url) {
        ("api-key", secret_header(key)?)
    } else {
        let bearer = secrecy::SecretString::from(format!(
            "Bearer {}",
            secrecy::ExposeSecret::expose_secret(key)
        ));
        ("authorization", secret_header(&bearer)?)
    };
    Ok(request.header(name, value))
}

/// Azure OpenAI hosts take the key in `api-key`, not as a bearer token.
fn is_azure(base_url: &str) -> bool {
    base_url.contains(".openai.azure.com")
}

/// The usage of a whole answer, which passes through as bytes: only `usage` is read, into
/// [`Counts`]; the rest is walked over ([`scan::member`]), or, when that gives up or the usage
/// cannot be read, checked to be JSON and skipped by serde (which says what is wrong).
fn usage_in(body: &[u8]) -> Result<Option<Usage>, UpstreamError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        usage: Option<Counts>,
    }
    match scan::member(body, "usage") {
        Some(None) => return Ok(None),
        Some(Some(b"null")) => return Ok(None),
        Some(Some(usage)) => {
            if let Some(usage) = scanned_usage(usage) {
                return Ok(Some(usage));
            }
        }
        None => {}
    }
    match serde_json::from_slice::<Answer>(body) {
        Ok(answer) => Ok(answer.usage.map(Counts::usage)),
        // Not JSON at all, or JSON whose usage cannot be read (not an object): then it is
        // charged as an answer without usage, and said.
        Err(error) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(not_json)?;
            tracing::warn!(%error, "an upstream answer's usage could not be read; it is charged without usage");
            Ok(None)
        }
    }
}

/// A `usage` object's counts, read as [`Counts`] reads them, from its text; `None` when the
/// walk gave up or [`Counts`] would refuse it (a repeated name).
fn scanned_usage(usage: &[u8]) -> Option<Usage> {
    let (mut input, mut output, mut details) = (None, None, None);
    let mut repeated = false;
    scan::members(usage, |name, value| {
        let slot = match name {
            b"prompt_tokens" => &mut input,
            b"completion_tokens" => &mut output,
            b"prompt_tokens_details" => &mut details,
            _ => return,
        };
        repeated |= slot.replace(value).is_some();
    })?;
    let cached_tokens = match details {
        Some(details) if details.starts_with(b"{") => scan::member(details, "cached_tokens")?,
        _ => None,
    };
    (!repeated).then(|| Usage {
        input_tokens: input.map_or(0, scan::integer),
        cached_input_tokens: cached_tokens.map_or(0, scan::integer),
        output_tokens: output.map_or(0, scan::integer),
    })
}

/// A `usage` object's counts (none when it is null or not an object).
fn usage_of(usage: &Value) -> Option<Usage> {
    Option::<Counts>::deserialize(usage)
        .ok()
        .flatten()
        .map(Counts::usage)
}

/// The counts of a `usage` object, read without building a JSON tree of it (that cost more
/// than the rest of reading an answer). A count that is not an integer counts 0, as
/// [`count`](super::shape::count) reads one; fields not named here are skipped.
#[derive(serde::Deserialize)]
struct Counts {
    #[serde(default)]
    prompt_tokens: Lenient,
    #[serde(default)]
    completion_tokens: Lenient,
    #[serde(default)]
    prompt_tokens_details: Details,
}

impl Counts {
    fn usage(self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.0,
            cached_input_tokens: self.prompt_tokens_details.0.0,
            output_tokens: self.completion_tokens.0,
        }
    }
}

/// Any JSON value, as the integer it is, or 0.
#[derive(Default)]
struct Lenient(i64);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(value: D) -> Result<Self, D::Error> {
        value.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> serde::de::Visitor<'de> for LenientVisitor {
    type Value = Lenient;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_i64<E>(self, n: i64) -> Result<Lenient, E> {
        Ok(Lenient(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Lenient, E> {
        Ok(Lenient(i64::try_from(n).unwrap_or(0)))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Lenient, E> {
        Ok(Lenient(0))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Lenient, E> {
        Ok(Lenient(0))
    }

    fn visit_str<E>(self, _: &str) -> Result<Lenient, E> {
        Ok(Lenient(0))
    }

    fn visit_unit<E>(self) -> Result<Lenient, E> {
        Ok(Lenient(0))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Lenient(0))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Lenient(0))
    }
}

/// `prompt_tokens_details`: its `cached_tokens` when it is an object, else 0.
#[derive(Default)]
struct Details(Lenient);

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: serde::Deserializer<'de>>(value: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Object {
            #[serde(default)]
            cached_tokens: Lenient,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Details;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Details, A::Error> {
                let object =
                    Object::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Details(object.cached_tokens))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Details, A::Error> {
                LenientVisitor.visit_seq(seq).map(|_| Details::default())
            }

            fn visit_i64<E>(self, _: i64) -> Result<Details, E> {
                Ok(Details::default())
            }

            fn visit_u64<E>(self, _: u64) -> Result<Details, E> {
                Ok(Details::default())
            }

            fn visit_f64<E>(self, _: f64) -> Result<Details, E> {
                Ok(Details::default())
            }

            fn visit_bool<E>(self, _: bool) -> Result<Details, E> {
                Ok(Details::default())
            }

            fn visit_str<E>(self, _: &str) -> Result<Details, E> {
                Ok(Details::default())
            }

            fn visit_unit<E>(self) -> Result<Details, E> {
                Ok(Details::default())
            }
        }
        value.deserialize_any(Visitor)
    }
}

/// The client's request with `stream: true` and `stream_options.include_usage: true`,
/// serialized without copying the rest (the messages may be large).
struct Streaming<'a>(&'a Map<String, Value>);

impl Serialize for Streaming<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut options = match self.0.get("stream_options") {
            Some(Value::Object(options)) => options.clone(),
            _ => Map::new(),
        };
        options.insert("include_usage".to_owned(), Value::Bool(true));
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.0 {
            if name != "stream" && name != "stream_options" {
                map.serialize_entry(name, value)?;
            }
        }
        map.serialize_entry("stream", &true)?;
        map.serialize_entry("stream_options", &options)?;
        map.end()
    }
}

/// Reads OpenAI's stream: chunks pass through, usage leaves them as [`StreamEvent::Usage`].
struct Chunks;

/// What the gateway reads of an ordinary chunk, borrowed from its payload.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    choices: Vec<PeekChoice<'a>>,
    /// Present and not null: the chunk carries usage (parsed the slow way).
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PeekChoice<'a> {
    #[serde(default, borrow)]
    delta: PeekDelta<'a>,
}

#[derive(serde::Deserialize, Default)]
struct PeekDelta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Vec<PeekToolCall<'a>>,
}

#[derive(serde::Deserialize)]
struct PeekToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<PeekFunction<'a>>,
}

#[derive(serde::Deserialize)]
struct PeekFunction<'a> {
    #[serde(default, borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

impl PeekChoice<'_> {
    fn text_chars(&self) -> usize {
        let content = self.delta.content.as_deref().map_or(0, str::len);
        let arguments: usize = self
            .delta
            .tool_calls
            .iter()
            .filter_map(|call| call.function.as_ref()?.arguments.as_deref())
            .map(str::len)
            .sum();
        content + arguments
    }
}

impl Translate for Chunks {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, UpstreamError> {
        if event.data.trim() == "[DONE]" {
            return Ok(Flow::Done);
        }
        // Most chunks carry a little text and nothing else: read just that, borrowing from the
        // payload, and forward the payload as it is.
        if let Ok(peek) = serde_json::from_str::<Peek<'_>>(&event.data)
            && peek.error.is_none()
            && peek.usage.is_none()
            && !peek.choices.is_empty()
        {
            let text_chars = peek.choices.iter().map(PeekChoice::text_chars).sum();
            out.push_back(StreamEvent::Passthrough {
                data: event.data,
                text_chars,
            });
            return Ok(Flow::Continue);
        }
        let mut chunk = event.json()?;
        if let Some(error) = chunk.get("error") {
            return Err(stream_error(error));
        }
        let usage = chunk
            .as_object_mut()
            .and_then(|c| c.remove("usage"))
            .and_then(|u| usage_of(&u));
        let has_choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if has_choices {
            out.push_back(StreamEvent::Chunk(chunk));
        }
        out.extend(usage.map(StreamEvent::Usage));
        Ok(Flow::Continue)
    }

    fn end(&mut self) -> Result<(), UpstreamError> {
        Err(UpstreamError::Protocol(
            "the stream ended before [DONE]".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn translate(data: &str) -> (Result<Flow, UpstreamError>, Vec<StreamEvent>) {
        let mut out = VecDeque::new();
        let flow = Chunks.event(
            SseEvent {
                event: None,
                data: data.to_owned(),
            },
            &mut out,
        );
        (flow, out.into())
    }

    #[test]
    fn usage_is_read_from_whole_answers_leniently() {
        let usage = |body: &str| usage_in(body.as_bytes()).unwrap();
        let read = usage(
            r#"{"choices":[{"message":{"content":"hi \"there\""}}],"usage":{"prompt_tokens":12,
                "completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4},
                "completion_tokens_details":{"reasoning_tokens":2}}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                read.input_tokens,
                read.cached_input_tokens,
                read.output_tokens
            ),
            (12, 4, 5)
        );
        // Counts that are not integers count 0; the others still count.
        let odd = usage(r#"{"usage":{"prompt_tokens":"12","completion_tokens":5,"prompt_tokens_details":null}}"#)
            .unwrap();
        assert_eq!(
            (odd.input_tokens, odd.cached_input_tokens, odd.output_tokens),
            (0, 0, 5)
        );
        let odder = usage(
            r#"{"usage":{"prompt_tokens":{"a":[1]},"completion_tokens":[2],
                "prompt_tokens_details":7,"total_tokens":1e3}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                odder.input_tokens,
                odder.cached_input_tokens,
                odder.output_tokens
            ),
            (0, 0, 0)
        );
        let details = usage(
            r#"{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":3.5,"x":{}}}}"#,
        )
        .unwrap();
        assert_eq!((details.input_tokens, details.cached_input_tokens), (9, 0));
        assert!(usage(r#"{"usage":null}"#).is_none());
        assert!(usage(r#"{"id":"x"}"#).is_none());
        // Usage that is not an object is charged as none; a body that is not JSON is an error.
        assert!(usage(r#"{"usage":7}"#).is_none());
        assert!(usage_in(b"not json").is_err());
        assert_eq!(
            usage_of(&json!({"prompt_tokens": 3})).map(|u| u.input_tokens),
            Some(3)
        );
        assert!(usage_of(&Value::Null).is_none());
    }

    #[test]
    fn streaming_forces_usage_and_keeps_the_rest() {
        let body = json!({ "model": "m", "messages": [], "stream": false,
                           "stream_options": { "other": 1 }, "tools": [] });
        let sent = serde_json::to_value(Streaming(body.as_object().unwrap())).unwrap();
        assert_eq!(
            sent,
            json!({ "model": "m", "messages": [], "tools": [], "stream": true,
                    "stream_options": { "other": 1, "include_usage": true } })
        );
    }

    #[test]
    fn usage_only_chunks_become_usage() {
        let (flow, out) = translate(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}}"#,
        );
        assert_eq!(flow, Ok(Flow::Continue));
        let usage = Usage {
            input_tokens: 3,
            cached_input_tokens: 1,
            output_tokens: 4,
        };
        assert_eq!(out, vec![StreamEvent::Usage(usage)]);
    }

    #[test]
    fn a_chunk_with_usage_gives_the_chunk_then_the_usage() {
        let (_, out) = translate(
            r#"{"choices":[{"delta":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        );
        assert_eq!(
            out,
            vec![
                StreamEvent::Chunk(json!({ "choices": [{ "delta": { "content": "hi" } }] })),
                StreamEvent::Usage(Usage {
                    input_tokens: 3,
                    cached_input_tokens: 0,
                    output_tokens: 4
                }),
            ]
        );
        // `usage: null` (every chunk but the last, with include_usage) is no usage: the chunk
        // passes through untouched.
        let data = r#"{"choices":[{"delta":{}}],"usage":null}"#;
        let (_, out) = translate(data);
        assert_eq!(
            out,
            vec![StreamEvent::Passthrough {
                data: data.to_owned(),
                text_chars: 0
            }]
        );
    }

    #[test]
    fn ordinary_chunks_pass_through_with_their_text_counted() {
        let data = r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"h\u00e9llo","tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}"#;
        let (flow, out) = translate(data);
        assert_eq!(flow, Ok(Flow::Continue));
        // "héllo" is 6 bytes of UTF-8, `{"a":1}` 7.
        assert_eq!(
            out,
            vec![StreamEvent::Passthrough {
                data: data.to_owned(),
                text_chars: 13
            }]
        );
    }

    #[test]
    fn done_ends_and_errors_are_errors() {
        assert_eq!(translate("[DONE]").0, Ok(Flow::Done));
        assert!(matches!(
            translate(r#"{"error":{"message":"boom","code":503}}"#).0,
            Err(UpstreamError::Status { status: 503, .. })
        ));
        assert!(matches!(
            translate("{nope").0,
            Err(UpstreamError::Protocol(_))
        ));
    }

    #[test]
    fn azure_hosts_are_recognised() {
        assert!(is_azure(
            "https://x.openai.azure.com/openai/deployments/d?api-version=1"
        ));
        assert!(!is_azure("https://api.openai.com/v1"));
    }
}
