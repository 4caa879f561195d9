//! A local Sentry receiver: keeps the events a Sentry client sends to a DSN pointing at it
//! (`http://key@127.0.0.1:PORT/1`), decoded from their envelopes.

use std::time::Duration;

use crate::otlp::HttpSink;

pub struct SentryReceiver {
    sink: HttpSink,
}

impl SentryReceiver {
    pub fn start() -> Self {
        Self {
            sink: HttpSink::start("application/json", b"{}"),
        }
    }

    /// A DSN for project 1 on this receiver.
    pub fn dsn(&self) -> String {
        format!("http://key@{}/1", self.sink.addr)
    }

    /// Every event received so far (items of type `event` in the envelopes posted).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let received = self.sink.received.lock().unwrap().clone();
        received
            .iter()
            .flat_map(|(_, body)| envelope_events(body))
            .collect()
    }

    /// Waits (at most `limit`) until at least `count` events have arrived.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let events = self.events();
            if events.len() >= count || tokio::time::Instant::now() >= deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The events of one envelope: a header line, then items, each a header line (with the
/// payload's `length` when given) and its payload.
fn envelope_events(body: &[u8]) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    let Some(start) = body.iter().position(|b| *b == b'\n') else {
        return events;
    };
    let mut rest = &body[start + 1..];
    while !rest.is_empty() {
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let header: serde_json::Value =
            serde_json::from_slice(&rest[..end]).expect("an envelope item header");
        rest = rest.get(end + 1..).unwrap_or_default();
        let length = header["length"].as_u64().map_or_else(
            || rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len()),
            |l| l as usize,
        );
        let payload = &rest[..length.min(rest.len())];
        if header["type"] == "event" {
            events.push(serde_json::from_slice(payload).expect("an event payload"));
        }
        rest = rest.get(length + 1..).unwrap_or_default();
    }
    events
}
