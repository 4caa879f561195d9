//! What every adapter does over HTTP the same way: build URLs, attach the key, send, and turn
//! failures (statuses, timeouts, broken connections, unreadable bodies) into [`UpstreamError`].

use foldhash::HashMap;
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::UpstreamError;

/// The longest upstream error message we pass on.
const MAX_MESSAGE_CHARS: usize = 500;

/// `base` with `path` appended; a query on `base` (Azure's `?api-version=…`) stays after the
/// path, merged with one `path` may carry (`?alt=sse`).
pub(super) fn join(base: &str, path: &str) -> String {
    let (base, base_query) = base.split_once('?').unwrap_or((base, ""));
    let (path, path_query) = path.split_once('?').unwrap_or((path, ""));
    let mut url = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let queries = [path_query, base_query];
    let mut queries = queries.iter().filter(|q| !q.is_empty());
    if let Some(first) = queries.next() {
        url.push('?');
        url.push_str(first);
        for more in queries {
            url.push('&');
            url.push_str(more);
        }
    }
    url
}

/// A POST to `path` under `base` (see [`join`]). Parsed URLs are kept (a few per provider
/// entry and model): parsing one, with its host's IDNA mapping, took more of a call's time
/// than the whole policy decision. A path carries the client's model name for some
/// providers, so only short URLs are kept, and at most [`MOST_URLS`] of them.
/// The caller's trace context (`traceparent`) goes with it when spans are exported.
pub(super) fn post_to(http: &reqwest::Client, base: &str, path: &str) -> RequestBuilder {
    post_untraced(http, base, path).headers(sb_telemetry::trace::outgoing_headers())
}

fn post_untraced(http: &reqwest::Client, base: &str, path: &str) -> RequestBuilder {
    const MOST_URLS: usize = 4096;
    const LONGEST_KEPT: usize = 512;
    static PARSED: LazyLock<Mutex<HashMap<String, reqwest::Url>>> = LazyLock::new(Mutex::default);
    let parsed = || PARSED.lock().unwrap_or_else(|e| e.into_inner());
    let joined = join(base, path);
    if let Some(url) = parsed().get(&joined) {
        return http.post(url.clone());
    }
    let Ok(url) = reqwest::Url::parse(&joined) else {
        // reqwest reports it when the request is sent.
        return http.post(joined);
    };
    if joined.len() <= LONGEST_KEPT {
        let mut kept = parsed();
        if kept.len() >= MOST_URLS {
            kept.clear();
        }
        kept.insert(joined, url.clone());
    }
    http.post(url)
}

/// A header value holding a key, marked sensitive so it is never logged.
pub(super) fn secret_header(key: &SecretString) -> Result<HeaderValue, UpstreamError> {
    let mut value = HeaderValue::from_str(key.expose_secret()).map_err(|_| {
        UpstreamError::Protocol("the provider key is not a valid header value".to_owned())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Sends `request`; a success status gives the response (its body unread), any other status
/// an [`UpstreamError::Status`] with the upstream's own message, with `key` never in it.
pub(super) async fn send(
    request: RequestBuilder,
    key: Option<&SecretString>,
) -> Result<Response, UpstreamError> {
    let response = request.send().await.map_err(from_reqwest)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // An unreadable error body still leaves the status to report.
    let body = response.text().await.unwrap_or_default();
    if serde_json::from_str::<Value>(&body).is_err() {
        tracing::warn!(status = status.as_u16(), body = %truncate(&mask(&body, key), MAX_MESSAGE_CHARS), "provider error body");
    }
    Err(UpstreamError::Status {
        status: status.as_u16(),
        message: error_message(&body, key),
    })
}

/// Sends `request` and reads a whole answer, unparsed.
pub(super) async fn send_bytes(
    request: RequestBuilder,
    key: Option<&SecretString>,
) -> Result<Bytes, UpstreamError> {
    send(request, key)
        .await?
        .bytes()
        .await
        .map_err(from_reqwest)
}

/// Sends `request` and reads a whole JSON answer.
pub(super) async fn send_json(
    request: RequestBuilder,
    key: Option<&SecretString>,
) -> Result<Value, UpstreamError> {
    let bytes = send_bytes(request, key).await?;
    serde_json::from_slice(&bytes).map_err(not_json)
}

/// An answer that does not parse.
pub(super) fn not_json(error: serde_json::Error) -> UpstreamError {
    UpstreamError::Protocol(format!("the body is not JSON: {error}"))
}

/// The error reqwest gave, as ours. The URL is left out of the text: it is ours to log.
pub(super) fn from_reqwest(error: reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        return UpstreamError::Timeout;
    }
    if error.is_builder() {
        return UpstreamError::Protocol(error.without_url().to_string());
    }
    // Everything else broke the connection, before or during the body (reqwest reports a
    // body cut mid-stream as a decode error).
    UpstreamError::Connect(error_chain(&error.without_url()))
}

/// An error with its causes, which say what actually broke ("connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The message of an upstream error body: `error.message` (OpenAI, Anthropic and Gemini all
/// put it there); shortened, and with the key masked should the upstream echo it. A body
/// without one (an HTML error page, a proxy's text) is not passed on: whatever answers at
/// an entry's address is no business of the caller's ([`send`] logs it).
pub(super) fn error_message(body: &str, key: Option<&SecretString>) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
        })
        .and_then(Value::as_str)
        .map_or("the provider gave no error message", str::trim);
    truncate(&mask(message, key), MAX_MESSAGE_CHARS)
}

/// `text` with the provider key masked, should the upstream echo it.
fn mask(text: &str, key: Option<&SecretString>) -> String {
    match key.map(ExposeSecret::expose_secret) {
        Some(key) if !key.is_empty() && text.contains(key) => text.replace(key, "[redacted]"),
        _ => text.to_owned(),
    }
}

/// The message of an error object sent inside a stream (`{"message": …}`), shortened.
pub(super) fn error_object_message(error: &Value) -> String {
    match error.get("message").and_then(Value::as_str) {
        Some(message) => truncate(message.trim(), MAX_MESSAGE_CHARS),
        None => truncate(&error.to_string(), MAX_MESSAGE_CHARS),
    }
}

/// An error object sent inside a stream (OpenAI-compatible servers and Gemini do), as a
/// status error with the HTTP code it carries (500 when it carries none).
pub(super) fn stream_error(error: &Value) -> UpstreamError {
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..=599).contains(c))
        .unwrap_or(500);
    UpstreamError::Status {
        status,
        message: error_object_message(error),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_puts_the_path_before_any_query() {
        assert_eq!(
            join("https://api.openai.com/v1/", "chat/completions"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            join(
                "https://x.openai.azure.com/openai/deployments/d?api-version=2024-10-21",
                "/chat/completions"
            ),
            "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            join("http://h/root?k=v", "/m:stream?alt=sse"),
            "http://h/root/m:stream?alt=sse&k=v"
        );
    }

    #[test]
    fn error_messages_come_from_the_error_object_shortened_and_without_the_key() {
        let key = SecretString::from("sk-secret");
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key sk-secret"}}"#, Some(&key)),
            "bad key [redacted]"
        );
        assert_eq!(error_message(r#"{"error":"plain"}"#, None), "plain");
        // What answers at an entry's address is not passed on unless it is an error object.
        assert_eq!(
            error_message("<html>admin panel</html>", None),
            "the provider gave no error message"
        );
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(600));
        assert_eq!(error_message(&long, None).chars().count(), 501);
    }
}
