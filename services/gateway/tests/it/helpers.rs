//! A mock upstream per test, and readers for what the adapters return.

use futures_util::StreamExt;
use sb_gateway::core::providers::{
    ChunkStream, Http, ProviderKind, StreamEvent, Upstream, UpstreamError, Usage,
};
use sb_testkit::RunningApp;
use secrecy::SecretString;
use serde_json::Value;

/// The mock's reply, written out here so a change to it fails a test. 21 words, 21 tokens.
pub const SENTENCE: &str = "Hello! This is mock-llm, an offline stand-in for a real model. Its answers are deterministic, so tests can count every token.";

/// A fresh mock on a free port.
pub async fn mock() -> RunningApp {
    let app = sb_mock_llm::build("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the mock binds a free port");
    sb_testkit::spawn(app)
}

/// An upstream of `kind` at `path` on the mock (a `/x/{directives}` prefix injects faults).
pub fn upstream(kind: ProviderKind, app: &RunningApp, path: &str) -> Upstream {
    Upstream {
        kind,
        base_url: app.url(path),
        api_key: Some(SecretString::from("sk-test-key")),
    }
}

pub fn http() -> Http {
    Http {
        client: reqwest::Client::new(),
        timeout: std::time::Duration::from_secs(30),
    }
}

/// Everything a stream yielded, sorted out.
#[derive(Debug, Default)]
pub struct Collected {
    pub chunks: Vec<Value>,
    pub usages: Vec<Usage>,
    pub error: Option<UpstreamError>,
    /// Whether anything came after the first error (it must not).
    pub after_error: bool,
}

impl Collected {
    /// The text of every chunk's `delta.content`, concatenated.
    pub fn content(&self) -> String {
        self.chunks
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect()
    }

    /// The last usage reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usages.last().copied()
    }

    /// The `finish_reason` of the last chunk.
    pub fn finish_reason(&self) -> Option<&str> {
        self.chunks
            .last()
            .and_then(|c| c.pointer("/choices/0/finish_reason"))
            .and_then(Value::as_str)
    }
}

/// Reads a stream to its end.
pub async fn collect(mut stream: ChunkStream) -> Collected {
    let mut collected = Collected::default();
    while let Some(item) = stream.next().await {
        if collected.error.is_some() {
            collected.after_error = true;
        }
        match item {
            Ok(event @ (StreamEvent::Chunk(_) | StreamEvent::Passthrough { .. })) => {
                let chunk = event.chunk().expect("a chunk is JSON");
                assert!(
                    chunk.get("usage").is_none_or(Value::is_null),
                    "usage stays out of chunks: {chunk}"
                );
                collected.chunks.push(chunk);
            }
            Ok(StreamEvent::Usage(usage)) => collected.usages.push(usage),
            Err(e) => collected.error = Some(e),
        }
    }
    collected
}

/// Usage with nothing cached.
pub fn usage(input_tokens: i64, output_tokens: i64) -> Usage {
    Usage {
        input_tokens,
        cached_input_tokens: 0,
        output_tokens,
    }
}

/// Asserts an error is the injected status, retryable as that status should be.
pub fn assert_status(error: &UpstreamError, status: u16, retryable: bool) {
    match error {
        UpstreamError::Status { status: s, message } => {
            assert_eq!(*s, status, "{error:?}");
            assert!(message.contains("mock-llm injected"), "{message}");
            assert!(!message.contains("sk-test-key"), "{message}");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert_eq!(error.retryable(), retryable, "{error:?}");
}

/// A one-request HTTP server that reads the request and answers `response` verbatim; the
/// task gives back the request as text.
pub fn raw_server(
    response: &'static str,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    serve_raw(response, true)
}

/// Like [`raw_server`], but the connection stays open, silent, after `response`.
pub fn stalling_server(response: &'static str) -> std::net::SocketAddr {
    serve_raw(response, false).0
}

fn serve_raw(
    response: &'static str,
    close: bool,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the body has arrived too: the head, then content-length bytes.
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        socket.write_all(response.as_bytes()).await.unwrap();
        if !close {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        }
        socket.shutdown().await.unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (addr, task)
}
