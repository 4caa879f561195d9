//! Errors to Sentry (when `SENTRY_DSN` is set): one event per answer with a 5xx status, tagged
//! with the request id, the tenant id (once known), the service, the release and the
//! environment, and carrying the error lines logged while the request was handled; one event per
//! error line logged outside any request (a bus consumer, a background task); and panics
//! (Sentry's panic integration).
//!
//! This is a `tracing` layer of its own rather than sentry-tracing's: that one makes an event of
//! every error line (a 500 logs its cause and then the middleware's "response failed", so two
//! events per failure) and sees span fields only with its performance-tracing span layer.
//! Nothing personal is sent: no user, no request body or headers, no path (an e-mail address
//! could be part of one); the fields kept are the ones named in [`KEPT_FIELDS`].

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use sentry::protocol::{Event, Level, Value};
use sentry::{Client, ClientInitGuard, ClientOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TracingEvent, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The message of the request middleware's line for a 5xx answer (`sb_runtime`).
pub const RESPONSE_FAILED: &str = "response failed";
/// The name of the request middleware's span.
const REQUEST_SPAN: &str = "request";
/// Fields copied from a request span into the tags of its event.
const TAGS: &[&str] = &["request_id", "tenant_id", "service"];
/// Fields of an error line that an event carries (others could hold anything).
const KEPT_FIELDS: &[&str] = &[
    "error", "status", "service", "stream", "kind", "event_id", "attempt",
];
/// Error lines one request keeps for its event.
const MOST_LINES: usize = 10;

/// Where events go and what they say about where they come from.
#[derive(Clone, Debug)]
pub struct SentrySettings {
    pub dsn: String,
    pub environment: String,
}

#[derive(Debug, thiserror::Error)]
#[error("SENTRY_DSN is not a valid Sentry DSN ({0}): copy it from the project's Client Keys page")]
pub struct BadDsn(String);

fn options(settings: &SentrySettings) -> Result<ClientOptions, BadDsn> {
    let dsn = settings
        .dsn
        .parse()
        .map_err(|e: sentry::types::ParseDsnError| BadDsn(e.to_string()))?;
    let mut options = ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(Cow::Owned(format!(
        "switchboard@{}",
        env!("CARGO_PKG_VERSION")
    )));
    options.environment = Some(Cow::Owned(settings.environment.clone()));
    options.send_default_pii = false;
    // No server name: the host's name is not the service's business to send.
    options.server_name = None;
    options.before_send = Some(Arc::new(|mut event: Event<'static>| {
        event.user = None;
        event.request = None;
        Some(event)
    }));
    Ok(options)
}

/// Starts Sentry for the process (the main hub, panics included); events are sent until the
/// guard is dropped, which waits briefly for the last ones.
pub fn init(settings: &SentrySettings) -> Result<(ClientInitGuard, Arc<Client>), BadDsn> {
    let guard = sentry::init(options(settings)?);
    let client = sentry::Hub::main()
        .client()
        .unwrap_or_else(|| Arc::new(Client::from(ClientOptions::default())));
    Ok((guard, client))
}

/// A client of its own, bound to no hub (tests: several in one process).
pub fn client(settings: &SentrySettings) -> Result<Arc<Client>, BadDsn> {
    let mut options = options(settings)?;
    // The transport, but not the process-wide panic hook.
    options.default_integrations = false;
    Ok(Arc::new(Client::from(sentry::apply_defaults(options))))
}

/// What the layer needs to see: spans down to info (the request span) and error lines.
pub fn filter<S>() -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + use<S> {
    tracing_subscriber::filter::filter_fn(|metadata| {
        if metadata.is_span() {
            *metadata.level() <= tracing::Level::INFO
        } else {
            *metadata.level() == tracing::Level::ERROR
        }
    })
}

/// The layer that turns 5xx answers and error lines into events of `client`.
pub fn layer(client: Arc<Client>) -> SentryErrors {
    SentryErrors { client }
}

pub struct SentryErrors {
    client: Arc<Client>,
}

/// Kept in a request span: its tags and the error lines logged inside it.
#[derive(Default)]
struct RequestReport {
    tags: Vec<(&'static str, String)>,
    lines: Vec<String>,
}

impl RequestReport {
    fn set_tag(&mut self, name: &'static str, value: String) {
        match self.tags.iter_mut().find(|(n, _)| *n == name) {
            Some(tag) => tag.1 = value,
            None => self.tags.push((name, value)),
        }
    }
}

struct TagVisitor<'a>(&'a mut RequestReport);

impl Visit for TagVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(name) = TAGS.iter().find(|n| **n == field.name())
            && !value.is_empty()
        {
            self.0.set_tag(name, value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// An error line's message and the fields kept.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        } else if let Some(name) = KEPT_FIELDS.iter().find(|n| **n == field.name()) {
            self.fields.push((name, value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl LineVisitor {
    fn line(&self) -> String {
        let mut line = self.message.clone();
        for (name, value) in &self.fields {
            let _ = write!(line, " {name}={value}");
        }
        line
    }
}

impl<S> Layer<S> for SentryErrors
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != REQUEST_SPAN {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut report = RequestReport::default();
        attrs.record(&mut TagVisitor(&mut report));
        span.extensions_mut().insert(report);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(report) = span.extensions_mut().get_mut::<RequestReport>() {
            values.record(&mut TagVisitor(report));
        }
    }

    fn on_event(&self, event: &TracingEvent<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        let mut line = LineVisitor::default();
        event.record(&mut line);
        let request = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find(|span| span.extensions().get::<RequestReport>().is_some())
        });
        let Some(request) = request else {
            self.capture(&line.message, line.fields.clone(), &[], &[]);
            return;
        };
        let mut extensions = request.extensions_mut();
        let Some(report) = extensions.get_mut::<RequestReport>() else {
            return;
        };
        if line.message == RESPONSE_FAILED {
            self.capture(&line.message, line.fields, &report.tags, &report.lines);
        } else if report.lines.len() < MOST_LINES {
            report.lines.push(line.line());
        }
    }
}

impl SentryErrors {
    fn capture(
        &self,
        message: &str,
        fields: Vec<(&'static str, String)>,
        tags: &[(&'static str, String)],
        lines: &[String],
    ) {
        let mut event = Event {
            level: Level::Error,
            message: Some(message.to_owned()),
            ..Event::default()
        };
        for (name, value) in tags {
            event.tags.insert((*name).to_owned(), value.clone());
        }
        for (name, value) in fields {
            event.extra.insert(name.to_owned(), Value::String(value));
        }
        if !lines.is_empty() {
            event.extra.insert(
                "errors".to_owned(),
                Value::Array(lines.iter().cloned().map(Value::String).collect()),
            );
        }
        self.client.capture_event(event, None);
    }
}
