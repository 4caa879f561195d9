//! Trace context: every `tracing` span is also an OpenTelemetry span, so it has a trace id and
//! a span id, and its context crosses process boundaries as a W3C `traceparent` value (HTTP
//! headers, bus entries).

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

const TRACEPARENT: &str = "traceparent";

/// The provider that gives spans their ids. Spans are only exported once an exporter is
/// configured (OTLP, docs/architecture.md); without one they still carry context.
pub fn provider() -> SdkTracerProvider {
    SdkTracerProvider::builder().build()
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("switchboard"))
}

/// The current span's context as a `traceparent` value, or `None` outside any traced span.
pub fn current_traceparent() -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span that `traceparent` names. A malformed value is
/// ignored: the span then starts a new trace, which is the best that can be done.
pub fn set_remote_parent(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if span.set_parent(context).is_err() {
        tracing::debug!("the span is not traced; its remote parent was dropped");
    }
}
