//! Provider adapters: each speaks one upstream wire format and translates it to and from the
//! OpenAI format that clients send, streaming included, and reads the provider's own usage.
//!
//! - `openai`: OpenAI and every OpenAI-compatible upstream (Azure-style base URLs, vLLM,
//!   Ollama, mock-llm). `base_url` includes the version, as in the OpenAI SDKs
//!   (`https://api.openai.com/v1`).
//! - `anthropic`: the Messages API. `base_url` is the API root (`https://api.anthropic.com`).
//! - `gemini`: `generateContent` / `streamGenerateContent`. `base_url` is the API root
//!   (`https://generativelanguage.googleapis.com`).

pub mod anthropic;
pub mod gemini;
mod http;
pub mod openai;
mod scan;
mod shape;
mod sse;

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use futures_util::Stream;
use secrecy::SecretString;
use serde_json::Value;

/// The wire format an upstream speaks (`provider_credentials.provider`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            "gemini" => Some(Self::Gemini),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }
}

/// A client's JSON request body: parsed, and as it was sent (what an adapter that passes it
/// through unchanged forwards, without writing it again).
pub struct ClientBody {
    pub json: Value,
    pub raw: Bytes,
}

impl From<Value> for ClientBody {
    /// A body made here rather than received: written out once.
    fn from(json: Value) -> Self {
        let raw = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
        Self { json, raw }
    }
}

/// One upstream to call: a tenant's provider entry with its secret decrypted.
#[derive(Clone)]
pub struct Upstream {
    pub kind: ProviderKind,
    pub base_url: String,
    /// None for upstreams that need no key (a local vLLM, Ollama, mock-llm).
    pub api_key: Option<SecretString>,
}

impl fmt::Debug for Upstream {
    // Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Token counts as the provider reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens, cached ones included.
    pub input_tokens: i64,
    /// The part of `input_tokens` served from the provider's prompt cache.
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
}

/// Why an upstream call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The upstream answered with an error status.
    Status { status: u16, message: String },
    /// No answer (or no first byte) in time.
    Timeout,
    /// Could not connect, or the connection broke.
    Connect(String),
    /// The upstream answered something we could not read.
    Protocol(String),
    /// This provider has no such endpoint (embeddings on Anthropic).
    Unsupported(&'static str),
}

impl UpstreamError {
    /// Worth retrying, on this upstream or the next one.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            Self::Timeout | Self::Connect(_) => true,
            Self::Protocol(_) | Self::Unsupported(_) => false,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, message } => write!(f, "upstream returned {status}: {message}"),
            Self::Timeout => write!(f, "upstream timed out"),
            Self::Connect(e) => write!(f, "upstream connection failed: {e}"),
            Self::Protocol(e) => write!(f, "upstream sent an unreadable response: {e}"),
            Self::Unsupported(what) => write!(f, "this provider does not support {what}"),
        }
    }
}

/// A whole (non-streamed) answer, already in the OpenAI format.
#[derive(Debug, Clone)]
pub struct Completion {
    /// A `chat.completion` (or embeddings `list`) object, as OpenAI would send it, as JSON
    /// text: an OpenAI-format upstream's own bytes, passed through unparsed.
    pub body: Bytes,
    pub usage: Usage,
}

impl Completion {
    /// A translated answer.
    fn of(body: &Value, usage: Usage) -> Self {
        Self {
            // Serialising a Value cannot fail.
            body: serde_json::to_vec(body).unwrap_or_default().into(),
            usage,
        }
    }

    /// The body, parsed.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What a streamed answer yields, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// One OpenAI `chat.completion.chunk` object (never a usage-only chunk).
    Chunk(Value),
    /// One OpenAI chunk exactly as an OpenAI-style upstream sent it (its `data:` payload, no
    /// usage in it), forwarded without being parsed into a `Value` and written again: the
    /// common case of a stream, kept cheap. `text_chars` is the text it carries (content and
    /// tool-call arguments), for metering a stream that is cut off.
    Passthrough { data: String, text_chars: usize },
    /// The provider's usage numbers; may come more than once, the last one wins.
    Usage(Usage),
}

impl StreamEvent {
    /// The chunk as a JSON value, whichever form it came in (None for usage).
    pub fn chunk(&self) -> Option<Value> {
        match self {
            Self::Chunk(chunk) => Some(chunk.clone()),
            Self::Passthrough { data, .. } => serde_json::from_str(data).ok(),
            Self::Usage(_) => None,
        }
    }
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, UpstreamError>> + Send>>;

/// How every upstream is called: the HTTP client, and how long an upstream may keep the
/// gateway waiting (`GATEWAY_UPSTREAM_TIMEOUT_SECONDS`): for a whole answer, for a stream's
/// start, and between a stream's reads.
#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub timeout: Duration,
}

/// `call`, or [`UpstreamError::Timeout`] once `limit` has passed.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(UpstreamError::Timeout))
}

impl Upstream {
    /// A `POST /chat/completions` with `stream` false or absent. `body` is the client's
    /// OpenAI request (tools, `response_format` and the rest pass through or are translated).
    pub async fn chat(&self, http: &Http, body: &ClientBody) -> Result<Completion, UpstreamError> {
        let client = &http.client;
        within(http.timeout, async {
            match self.kind {
                ProviderKind::OpenAi => openai::chat(client, self, &body.raw).await,
                ProviderKind::Anthropic => anthropic::chat(client, self, &body.json).await,
                ProviderKind::Gemini => gemini::chat(client, self, &body.json).await,
            }
        })
        .await
    }

    /// A streamed chat: the stream starts once the upstream has answered with a success
    /// status, so an upstream error before the first chunk is an `Err` here (and can fall back).
    /// Each chunk is yielded as soon as it arrives. The adapter always asks for usage.
    pub async fn chat_stream(
        &self,
        http: &Http,
        body: &Value,
    ) -> Result<ChunkStream, UpstreamError> {
        let (client, idle) = (&http.client, http.timeout);
        within(http.timeout, async {
            match self.kind {
                ProviderKind::OpenAi => openai::chat_stream(client, self, body, idle).await,
                ProviderKind::Anthropic => anthropic::chat_stream(client, self, body, idle).await,
                ProviderKind::Gemini => gemini::chat_stream(client, self, body, idle).await,
            }
        })
        .await
    }

    /// A `POST /embeddings`.
    pub async fn embeddings(
        &self,
        http: &Http,
        body: &ClientBody,
    ) -> Result<Completion, UpstreamError> {
        match self.kind {
            ProviderKind::OpenAi => {
                within(
                    http.timeout,
                    openai::embeddings(&http.client, self, &body.raw),
                )
                .await
            }
            ProviderKind::Anthropic => Err(UpstreamError::Unsupported("embeddings")),
            ProviderKind::Gemini => Err(UpstreamError::Unsupported("embeddings")),
        }
    }
}
