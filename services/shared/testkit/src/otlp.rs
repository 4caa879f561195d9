//! A local OTLP/HTTP receiver: keeps the spans that services export to it (protobuf), on a
//! thread and runtime of its own, so a test may block on `force_flush` while it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri, header};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message as _;
use tokio::sync::oneshot;

/// Every POST a [`HttpSink`] received: its path and body.
pub(crate) type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An HTTP server on 127.0.0.1 that answers every POST 200 and keeps it.
pub(crate) struct HttpSink {
    pub(crate) addr: SocketAddr,
    pub(crate) received: Received,
    stop: Option<oneshot::Sender<()>>,
}

impl HttpSink {
    pub(crate) fn start(content_type: &'static str, answer: &'static [u8]) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a sink port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the sink's address");
        let received = Received::default();
        let kept = received.clone();
        let router = Router::new().fallback(move |uri: Uri, body: Bytes| {
            kept.lock()
                .unwrap()
                .push((uri.path().to_owned(), body.to_vec()));
            async move {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, content_type)],
                    answer,
                )
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the sink's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("the sink serves");
            });
        });
        Self {
            addr,
            received,
            stop: Some(stop),
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One received span, its ids in hex as in a `traceparent`.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that exported it.
    pub service_name: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// String forms of the span's attributes.
    pub attributes: Vec<(String, String)>,
    /// The resource's attributes (`deployment.environment`, `service.version`, …).
    pub resource: Vec<(String, String)>,
}

impl ReceivedSpan {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn resource_attribute(&self, name: &str) -> Option<&str> {
        self.resource
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver; its [`endpoint`](Self::endpoint) is an `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub struct OtlpReceiver {
    sink: HttpSink,
}

impl OtlpReceiver {
    pub fn start() -> Self {
        Self {
            sink: HttpSink::start("application/x-protobuf", b""),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.sink.addr)
    }

    /// Every span received so far (posts to `/v1/traces`), decoded.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let received = self.sink.received.lock().unwrap().clone();
        let mut spans = Vec::new();
        for (path, body) in received {
            assert_eq!(path, "/v1/traces", "spans are posted to /v1/traces");
            let request = ExportTraceServiceRequest::decode(body.as_slice())
                .expect("an OTLP protobuf export");
            for resource_spans in request.resource_spans {
                let resource = resource_spans
                    .resource
                    .map(|r| pairs(&r.attributes))
                    .unwrap_or_default();
                let service_name = resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                    spans.push(ReceivedSpan {
                        service_name: service_name.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: pairs(&span.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
        spans
    }

    /// Whether any export received so far holds `bytes` (a prompt, a key: what must not be sent).
    pub fn received_any(&self, bytes: &[u8]) -> bool {
        self.sink
            .received
            .lock()
            .unwrap()
            .iter()
            .any(|(_, body)| body.windows(bytes.len()).any(|w| w == bytes))
    }

    /// Waits (at most `limit`) until `found` holds for the spans received.
    pub async fn wait_for(
        &self,
        limit: Duration,
        found: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let spans = self.spans();
            if found(&spans) || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
