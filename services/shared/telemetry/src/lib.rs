//! One entry point for logs, traces and metrics.
//!
//! `init` installs the log subscriber (pretty or JSON, filtered by `LOG_LEVEL`), and
//! `init_service` adds span export over OTLP ([`trace`]) and error reports to Sentry
//! ([`report`]) when they are configured; `prometheus`
//! installs the process-wide metrics recorder on first use and returns the handle that
//! `/metrics` renders. Both are safe to call more than once (tests start many services in one
//! process; `serve all` starts five).

mod handles;
mod json_fields;
pub mod report;
pub mod trace;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub use handles::HandleCache;
pub use json_fields::JsonSpanFields;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry_sdk::trace::SdkTracerProvider;
use sb_config::{LogConfig, LogFormat, TelemetryConfig};
use secrecy::ExposeSecret as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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
    #[error(transparent)]
    Export(#[from] trace::ExportError),
    #[error(transparent)]
    Sentry(#[from] report::BadDsn),
}

/// Held by `main` for the life of the process; sends the last spans and Sentry events when
/// dropped.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    _sentry: Option<sentry::ClientInitGuard>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "the last spans could not be exported");
        }
    }
}

/// Installs the global log subscriber for an operator command: logs only, to stderr (stdout
/// is for command output such as `seed --json`).
pub fn init(config: &LogConfig) -> Result<TelemetryGuard, TelemetryError> {
    install(config, None, None)?;
    Ok(TelemetryGuard {
        provider: None,
        _sentry: None,
    })
}

/// Installs the global subscriber of a running service: logs, and with
/// `OTEL_EXPORTER_OTLP_ENDPOINT` every span exported as an OpenTelemetry span (its context
/// read from and sent with HTTP requests and bus entries), and with `SENTRY_DSN` errors
/// reported to Sentry. Without an endpoint the trace layer is left out, since nothing would
/// collect the spans and it costs an allocation per span on every request. `service` is the
/// one service served (`gateway`), or `None` for `serve all`: it ends `service.name`.
pub fn init_service(
    config: &TelemetryConfig,
    service: Option<&str>,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(trace::exporting(&trace::ExportSettings {
            endpoint: endpoint.clone(),
            service_name: match service {
                Some(service) => format!("{}-{service}", config.service_name),
                None => config.service_name.clone(),
            },
            environment: config.environment.clone(),
            sampler: config.sampler,
        })?),
        None => None,
    };
    let sentry = match &config.sentry_dsn {
        Some(dsn) => Some(report::init(&report::SentrySettings {
            dsn: dsn.expose_secret().to_owned(),
            environment: config.environment.clone(),
        })?),
        None => None,
    };
    let (guard, client) = sentry.unzip();
    install(&config.log, provider.as_ref(), client)?;
    Ok(TelemetryGuard {
        provider,
        _sentry: guard,
    })
}

fn install(
    config: &LogConfig,
    provider: Option<&SdkTracerProvider>,
    sentry: Option<Arc<sentry::Client>>,
) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|source| TelemetryError::BadFilter {
        value: config.level.clone(),
        source,
    })?;
    let installed = if provider.is_none() && sentry.is_none() {
        // One global filter: spans and lines below `LOG_LEVEL` cost nothing.
        tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(config.format))
            .try_init()
    } else {
        // `LOG_LEVEL` filters the log lines only: spans are exported and errors reported
        // whatever it says.
        REPORTING.store(true, Ordering::Relaxed);
        tracing_subscriber::registry()
            .with(log_layer(config.format).with_filter(filter))
            .with(provider.map(|p| trace::layer(p).with_filter(LevelFilter::INFO)))
            .with(sentry.map(|c| report::layer(c).with_filter(report::filter())))
            .try_init()
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed; keeping it");
    }
    Ok(())
}

/// The log lines, to stderr.
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    match format {
        // JSON lines carry the current span's fields, so the request id is on every line.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(JsonSpanFields)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_writer(std::io::stderr)
            .boxed(),
    }
}

/// Whether spans are exported or errors reported: what [`record_tenant`] is for.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Records the caller's tenant on the current request's span (its `tenant_id` field), for
/// exported spans and Sentry tags; nothing when neither is on (it is work on every call).
pub fn record_tenant(tenant: &dyn std::fmt::Display) {
    if REPORTING.load(Ordering::Relaxed) {
        tracing::Span::current().record("tenant_id", tracing::field::display(tenant));
    }
}

/// A subscriber that writes no logs but exports spans through `provider` and reports errors
/// to `sentry`: for tests, installed with `tracing::subscriber::set_default`.
pub fn test_subscriber(
    provider: Option<&SdkTracerProvider>,
    sentry: Option<Arc<sentry::Client>>,
) -> impl tracing::Subscriber + Send + Sync + use<> {
    REPORTING.store(true, Ordering::Relaxed);
    tracing_subscriber::registry()
        .with(provider.map(|p| trace::layer(p).with_filter(LevelFilter::INFO)))
        .with(sentry.map(|c| report::layer(c).with_filter(report::filter())))
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
