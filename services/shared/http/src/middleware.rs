//! The standard layers every service carries: a request id on every request, response and
//! log line; a tracing span per request; and the HTTP metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics::{Counter, Histogram};
use sb_telemetry::HandleCache;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The header that carries the request id; a client's own is kept, otherwise one is made.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

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
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(move |req: &Request| {
                            let request_id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                            tracing::info_span!("request", service, method = %req.method(), path = %req.uri().path(), request_id)
                        })
                        .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
                )
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
