//! Server-Sent Events from an upstream's byte stream, and the driver every adapter's stream
//! runs on: bytes in, SSE events parsed as they complete, each translated into OpenAI chunks
//! and usage by the adapter's [`Translate`], yielded as soon as they are ready.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, stream};
use tokio::time::{Instant, Sleep};

use super::http::from_reqwest;
use super::{ChunkStream, StreamEvent, UpstreamError};

/// One server-sent event: its `event:` name, if any, and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// The data as JSON, as every upstream but OpenAI's `[DONE]` sends it.
    pub fn json(&self) -> Result<serde_json::Value, UpstreamError> {
        serde_json::from_str(&self.data)
            .map_err(|e| UpstreamError::Protocol(format!("a stream event is not JSON: {e}")))
    }
}

/// An incremental SSE parser: feed it bytes as they arrive, take the events they complete.
/// Lines may be split anywhere between feeds (inside a UTF-8 character too).
#[derive(Debug, Default)]
pub(super) struct SseParser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Parses `bytes`, appending every event they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = bytes;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line, out);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, out);
            }
        }
        self.partial.extend_from_slice(rest);
    }

    /// The event left when the body ends without a final blank line, if any.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line.starts_with(b":") {
            return; // a comment (keep-alive)
        }
        // Valid UTF-8 is checked the fast way; only a broken line pays for the lossy repair.
        let line = match std::str::from_utf8(line) {
            Ok(line) => std::borrow::Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(line),
        };
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields mean nothing to us
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if self.has_data {
            self.has_data = false;
            out.push(SseEvent {
                event,
                data: std::mem::take(&mut self.data),
            });
        }
    }
}

/// Whether a stream goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// The upstream's end marker arrived: stop reading.
    Done,
}

/// An adapter's stream translation: upstream events in, OpenAI chunks and usage out.
pub(super) trait Translate: Send + 'static {
    /// Translates one event, pushing what it yields to `out` (in order).
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, UpstreamError>;

    /// Called when the body ends before [`Flow::Done`]: an error if that means it was cut.
    fn end(&mut self) -> Result<(), UpstreamError>;
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

struct Driver<T> {
    body: Body,
    /// Fires once the upstream may have been silent for `idle`; re-armed only then, from the
    /// last read. (reqwest's read timeout resets a timer at every read: 2.3 % of a streamed
    /// call's instructions in the gateway.)
    silence: Pin<Box<Sleep>>,
    idle: Duration,
    last_read: Instant,
    parser: SseParser,
    translator: T,
    parsed: Vec<SseEvent>,
    ready: VecDeque<StreamEvent>,
    error: Option<UpstreamError>,
    finished: bool,
}

impl<T: Translate> Driver<T> {
    /// Reads more of the body and translates what it completes; false once nothing is left.
    async fn advance(&mut self) -> bool {
        if self.finished {
            return false;
        }
        let outcome = match poll_fn(|cx| self.poll_read(cx)).await {
            Some(Ok(bytes)) => {
                self.parser.feed(&bytes, &mut self.parsed);
                self.translate_parsed()
            }
            Some(Err(e)) => Err(e),
            None => {
                self.parser.finish(&mut self.parsed);
                match self.translate_parsed() {
                    Ok(Flow::Continue) => self.translator.end().map(|()| Flow::Done),
                    other => other,
                }
            }
        };
        match outcome {
            Ok(Flow::Continue) => {}
            Ok(Flow::Done) => self.finished = true,
            Err(e) => {
                self.finished = true;
                self.error = Some(e);
            }
        }
        true
    }

    /// The body's next piece, or [`UpstreamError::Timeout`] once the upstream has been silent
    /// for `idle`.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        if let Poll::Ready(next) = self.body.as_mut().poll_next(cx) {
            self.last_read = Instant::now();
            return Poll::Ready(next.map(|read| read.map_err(from_reqwest)));
        }
        while self.silence.as_mut().poll(cx).is_ready() {
            let quiet_until = self.last_read + self.idle;
            if Instant::now() >= quiet_until {
                return Poll::Ready(Some(Err(UpstreamError::Timeout)));
            }
            self.silence.as_mut().reset(quiet_until);
        }
        Poll::Pending
    }

    fn translate_parsed(&mut self) -> Result<Flow, UpstreamError> {
        for event in self.parsed.drain(..) {
            if self.translator.event(event, &mut self.ready)? == Flow::Done {
                return Ok(Flow::Done);
            }
        }
        Ok(Flow::Continue)
    }
}

/// The stream of a successful SSE response, translated by `translator`. Everything that
/// arrived is yielded before an error; nothing follows an error or the end marker. An upstream
/// silent for `idle` ends it with [`UpstreamError::Timeout`].
pub(super) fn translate<T: Translate>(
    response: reqwest::Response,
    translator: T,
    idle: Duration,
) -> ChunkStream {
    let driver = Driver {
        body: Box::pin(response.bytes_stream()),
        silence: Box::pin(tokio::time::sleep(idle)),
        idle,
        last_read: Instant::now(),
        parser: SseParser::default(),
        translator,
        parsed: Vec::new(),
        ready: VecDeque::new(),
        error: None,
        finished: false,
    };
    Box::pin(stream::unfold(driver, |mut driver| async move {
        loop {
            if let Some(event) = driver.ready.pop_front() {
                return Some((Ok(event), driver));
            }
            if let Some(error) = driver.error.take() {
                return Some((Err(error), driver));
            }
            if !driver.advance().await {
                return None;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(body: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in body.chunks(piece) {
            parser.feed(chunk, &mut out);
        }
        parser.finish(&mut out);
        out
    }

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_parse_whatever_the_split() {
        let body = ": keep-alive\r\n\r\nevent: a\r\ndata: {\"x\":\"é\"}\r\n\r\ndata:two\ndata: lines\n\nid: 7\n\nevent: lonely\n\ndata: [DONE]";
        let expected = vec![
            event(Some("a"), "{\"x\":\"é\"}"),
            event(None, "two\nlines"),
            event(None, "[DONE]"),
        ];
        for piece in 1..body.len() {
            assert_eq!(
                parse_in_pieces(body.as_bytes(), piece),
                expected,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        assert_eq!(
            parse_in_pieces(b"data: a\xffb\n\n", 3),
            vec![event(None, "a\u{fffd}b")]
        );
    }

    #[test]
    fn empty_data_is_still_an_event() {
        assert_eq!(parse_in_pieces(b"data:\n\n", 64), vec![event(None, "")]);
    }
}
