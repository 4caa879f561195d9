//! The standard layers every service carries: a request id on every request, response and
//! log line; a tracing span per request; and the HTTP metrics.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use futures_util::future::BoxFuture;
use metrics::{Counter, Histogram};
use sb_telemetry::HandleCache;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::{Instrument, Span};

/// The header that carries the request id; a client's own is kept if it is plain (see
/// [`plain_request_id`]), otherwise one is made.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id a client may choose.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client's request id may be kept: at most [`MAX_REQUEST_ID_LEN`] characters of
/// `A-Z a-z 0-9 . _ -`. The id goes into every log line and the audit log, so anything else
/// (a kilobyte of text, quotes, control characters, a forged log line) is replaced.
pub fn plain_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Drops a client's request id that is not plain, or sent more than once, so that
/// `SetRequestIdLayer` makes a new one.
fn drop_unplain_request_id(mut req: Request) -> Request {
    let ids = req.headers().get_all(REQUEST_ID_HEADER);
    let mut values = ids.iter();
    let keep =
        matches!((values.next(), values.next()), (Some(v), None) if plain_request_id(v.as_bytes()));
    if !keep {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    req
}

/// Wraps `router` with the standard layers. `service` labels the metrics, so that one
/// `/metrics` in `serve all` tells the five services apart.
pub fn standard_layers(router: Router, service: &'static str) -> Router {
    // Install the recorder now: metrics recorded before it exists would be lost.
    sb_telemetry::prometheus();
    router
        // Metrics per matched route (route_layer: unmatched paths would explode the label set).
        .route_layer(middleware::from_fn({
            let handles = Arc::new(RouteMetrics::new(MOST_ROUTES));
            move |req, next| track_metrics(handles.clone(), service, req, next)
        }))
        .layer(
            ServiceBuilder::new()
                .map_request(drop_unplain_request_id)
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(RequestSpanLayer { service })
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER)),
        )
}

/// `http_requests_total` and `http_request_duration_seconds`, by route, then method and status.
type RouteMetrics = HandleCache<(Method, StatusCode), (Counter, Histogram)>;

/// More routes than any service has.
const MOST_ROUTES: usize = 1_000;

async fn track_metrics(
    handles: Arc<RouteMetrics>,
    service: &'static str,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status();
    let (requests, duration) = handles.get(route, (method.clone(), status), || {
        let labels = [
            ("service", service.to_owned()),
            ("method", method.to_string()),
            ("route", route.to_owned()),
            ("status", status.as_u16().to_string()),
        ];
        (
            metrics::counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels),
        )
    });
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    response
}

/// A `request` span (service, method, path, request id) around each request's handling, with
/// a line when it starts and when it ends (debug; error for a 5xx). Unlike tower-http's
/// `TraceLayer`, the response body is not polled inside the span: a streamed answer's body is
/// polled once per chunk, and entering and leaving the span each time was 4.9 % of a streamed
/// call's work in the gateway. (A body that logs captures the span itself.)
#[derive(Clone, Copy)]
struct RequestSpanLayer {
    service: &'static str,
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan {
            inner,
            service: self.service,
        }
    }
}

#[derive(Clone)]
struct RequestSpan<S> {
    inner: S,
    service: &'static str,
}

impl<S> Service<Request> for RequestSpan<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // `tenant_id` is recorded once the caller is known (logs, traces, Sentry tags).
        let span = tracing::info_span!("request", service = self.service, method = %req.method(), path = %req.uri().path(), request_id, tenant_id = tracing::field::Empty);
        // A caller's `traceparent` makes this span its child (when spans are exported).
        sb_telemetry::trace::set_parent_from_headers(&span, req.headers());
        let started = Instant::now();
        let handled = span.in_scope(|| {
            tracing::debug!("started processing request");
            self.inner.call(req)
        });
        Box::pin(async move {
            let result = handled.instrument(span.clone()).await;
            if let Ok(response) = &result {
                finished(&span, response.status(), started);
            }
            result
        })
    }
}

fn finished(span: &Span, status: StatusCode, started: Instant) {
    let _entered = span.enter();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        // Sentry reports a 5xx by this message (sb_telemetry::report::RESPONSE_FAILED).
        tracing::error!(status = status.as_u16(), latency_ms, "response failed");
    } else {
        tracing::debug!(
            status = status.as_u16(),
            latency_ms,
            "finished processing request"
        );
    }
}
