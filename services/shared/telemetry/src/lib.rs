//! One entry point for logs, traces and metrics.
//!
//! `init` installs the log subscriber (pretty or JSON, filtered by `LOG_LEVEL`); `prometheus`
//! installs the process-wide metrics recorder on first use and returns the handle that
//! `/metrics` renders. Both are safe to call more than once (tests start many services in one
//! process; `serve all` starts five).

mod handles;
mod json_fields;
pub mod trace;

use std::sync::OnceLock;

pub use handles::HandleCache;
pub use json_fields::JsonSpanFields;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sb_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Buckets for every `*_seconds` histogram: from 0.5 ms (the gateway's overhead budget) to
/// 10 s (a slow model call), so the alert rules' p99 thresholds (1 s, 3 s) fall inside.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of `agent_duration_seconds`: a run takes seconds to hours (`AGENT_TIMEOUT_SECONDS`).
const RUN_SECONDS_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14_400.0, 86_400.0,
];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "LOG_LEVEL {value:?} is not a valid filter ({source}): set it to a level such as info or debug, or directives such as info,sb_gateway=debug"
    )]
    BadFilter {
        value: String,
        source: tracing_subscriber::filter::ParseError,
    },
}

/// Held by `main` for the life of the process; flushes what needs flushing when dropped.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "trace provider shutdown");
        }
    }
}

/// Installs the global log subscriber, writing to stderr (stdout is for command output such as
/// `seed --json`). With `traces` (an OTLP endpoint is configured), every span is also an
/// OpenTelemetry span whose context crosses HTTP and the bus; without it that layer is left
/// out, since nothing would collect the spans and it costs an allocation per span on every
/// request. A second call (another service in the same process) keeps the first subscriber.
pub fn init(config: &LogConfig, traces: bool) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|source| TelemetryError::BadFilter {
        value: config.level.clone(),
        source,
    })?;
    let provider = trace::provider();
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(traces.then(|| trace::layer(&provider)));
    let installed = match config.format {
        // JSON lines carry the current span's fields, so the request id is on every line.
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_current_span(true)
                    .with_span_list(false)
                    .fmt_fields(JsonSpanFields),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed; keeping it");
    }
    Ok(TelemetryGuard { provider })
}

/// The process-wide Prometheus recorder, installed on first call.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // A full name sorts (and so matches) before a suffix: agent runs last minutes.
        let builder = builder
            .set_buckets_for_metric(
                Matcher::Full("agent_duration_seconds".into()),
                RUN_SECONDS_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Renders every metric in the Prometheus text format.
pub fn render_metrics() -> String {
    let handle = prometheus();
    // Drains histogram samples into their buckets; cheap, and scrapes are infrequent.
    handle.run_upkeep();
    handle.render()
}
