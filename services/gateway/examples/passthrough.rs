//! A bare pass-through proxy, the baseline of `tests/bench/gateway/run`: the same server and
//! client stack as the gateway (axum, and reqwest configured as `Gateway::new` does), but no
//! auth, no policy and no metering. It forwards the body of `POST /v1/chat/completions` to the
//! upstream and streams the answer back chunk by chunk as it arrives.
//!
//! `PASSTHROUGH_PORT` (8089) and `PASSTHROUGH_UPSTREAM`
//! (`http://127.0.0.1:8090/v1/chat/completions`) configure it.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::post;

#[derive(Clone)]
struct Proxy {
    http: reqwest::Client,
    upstream: String,
}

async fn forward(State(proxy): State<Proxy>, body: Bytes) -> Result<Response, StatusCode> {
    let answer = proxy
        .http
        .post(&proxy.upstream)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let mut response = Response::builder().status(answer.status());
    if let Some(content_type) = answer.headers().get(CONTENT_TYPE) {
        response = response.header(CONTENT_TYPE, content_type);
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("PASSTHROUGH_PORT").unwrap_or_else(|_| "8089".to_owned());
    let upstream = std::env::var("PASSTHROUGH_UPSTREAM")
        .unwrap_or_else(|_| "http://127.0.0.1:8090/v1/chat/completions".to_owned());
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()?;
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(Proxy { http, upstream });
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    // As the services do (sb_runtime::App): without it, streamed chunks wait for delayed ACKs.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
