//! Trace context and export. With an OTLP endpoint configured, every `tracing` span is also an
//! OpenTelemetry span: it has a trace id and a span id, its context crosses process boundaries
//! as a W3C `traceparent` (and `tracestate`) value (HTTP headers, bus entries), and a batch
//! processor on its own thread sends the finished spans over OTLP/HTTP. Without an endpoint the
//! layer is left out, and every function here returns at once.
//!
//! Spans carry what their `tracing` fields carry (service, method, path, request id, tenant
//! id, bus stream and event ids) and the log lines inside them: never a prompt, a completion or
//! a secret, which no span field or log line holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use sb_config::{RootSampler, TraceSampler};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a trace layer is installed in this process: until one is, nothing here does work.
static TRACING: AtomicBool = AtomicBool::new(false);

/// What an exported span says about where it comes from.
#[derive(Clone, Debug)]
pub struct ExportSettings {
    /// The OTLP/HTTP base URL; spans are posted to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// `deployment.environment`.
    pub environment: String,
    pub sampler: TraceSampler,
}

#[derive(Debug, thiserror::Error)]
#[error("OTEL_EXPORTER_OTLP_ENDPOINT: the span exporter could not be built ({0})")]
pub struct ExportError(String);

/// A provider whose spans a batch processor sends over OTLP/HTTP (protobuf). Call
/// `shutdown` (see `TelemetryGuard`) to send the last batch before the process exits.
pub fn exporting(settings: &ExportSettings) -> Result<SdkTracerProvider, ExportError> {
    let endpoint = format!("{}/v1/traces", settings.endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| ExportError(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            KeyValue::new("deployment.environment", settings.environment.clone()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(settings.sampler))
        .with_resource(resource)
        .build())
}

fn sampler(config: TraceSampler) -> Sampler {
    let root = |r: RootSampler| match r {
        RootSampler::AlwaysOn => Sampler::AlwaysOn,
        RootSampler::AlwaysOff => Sampler::AlwaysOff,
        RootSampler::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
    };
    match config {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
        TraceSampler::ParentBased(r) => Sampler::ParentBased(Box::new(root(r))),
    }
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`; from now on the
/// functions below read and write trace context.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    TRACING.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("switchboard"))
        // Less work per span: no thread, source location or busy/idle attributes.
        .with_threads(false)
        .with_location(false)
        .with_tracked_inactivity(false)
}

fn tracing() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The current span's context as a `traceparent` value, or `None` outside any traced span.
pub fn current_traceparent() -> Option<String> {
    if !tracing() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span that `traceparent` names. A malformed value is
/// ignored: the span then starts a new trace, which is the best that can be done.
pub fn set_remote_parent(span: &Span, traceparent: &str) {
    if !tracing() {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    set_parent(span, TraceContextPropagator::new().extract(&carrier));
}

/// Makes `span` (a request's) a child of the caller's span when the request carries a
/// `traceparent` header (and its `tracestate`).
pub fn set_parent_from_headers(span: &Span, headers: &HeaderMap) {
    if !tracing() || !headers.contains_key(TRACEPARENT) {
        return;
    }
    set_parent(
        span,
        TraceContextPropagator::new().extract(&HeaderCarrier(headers)),
    );
}

fn set_parent(span: &Span, context: Context) {
    if !context.span().span_context().is_valid() {
        return;
    }
    if span.set_parent(context).is_err() {
        tracing::debug!("the span is not traced; its remote parent was dropped");
    }
}

/// The headers that carry the current span's context to the service an outgoing request
/// calls: `traceparent` (and `tracestate` when set); empty when nothing is traced.
pub fn outgoing_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    if tracing() {
        TraceContextPropagator::new().inject_context(
            &Span::current().context(),
            &mut HeaderInjector(&mut headers),
        );
    }
    headers
}

struct HeaderCarrier<'a>(&'a HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            TRACEPARENT => HeaderName::from_static(TRACEPARENT),
            TRACESTATE => HeaderName::from_static(TRACESTATE),
            _ => return,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn context_goes_out_and_comes_back_in_headers() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        tracing::subscriber::with_default(subscriber, || {
            let incoming = HeaderMap::from_iter([
                (
                    HeaderName::from_static(TRACEPARENT),
                    HeaderValue::from_static(
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                ),
                (
                    HeaderName::from_static(TRACESTATE),
                    HeaderValue::from_static("vendor=value"),
                ),
            ]);
            let span = tracing::info_span!("request");
            set_parent_from_headers(&span, &incoming);
            let out = span.in_scope(outgoing_headers);
            let traceparent = out.get(TRACEPARENT).and_then(|v| v.to_str().ok());
            let traceparent = traceparent.unwrap_or_default();
            // Same trace, a new span id (this span's), still sampled.
            assert!(
                traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{traceparent}"
            );
            assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");
            assert!(traceparent.ends_with("-01"), "{traceparent}");
            assert_eq!(
                out.get(TRACESTATE).and_then(|v| v.to_str().ok()),
                Some("vendor=value")
            );
        });
    }
}
