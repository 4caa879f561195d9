//! The health and metrics routes every service carries.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{client, mock, post_json, send_json};

#[tokio::test]
async fn health_is_ok_without_dependencies() {
    let app = mock().await;
    let (status, _, body) = send_json(client().get(app.url("/health"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "mock-llm");

    let (status, _, body) = send_json(client().get(app.url("/health/detailed"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "mock-llm");
    assert_eq!(body["checks"], json!({}), "mock-llm checks nothing");
}

#[tokio::test]
async fn metrics_count_requests_by_service_and_route() {
    let app = mock().await;
    let (status, _, _) = post_json(
        &app,
        "/v1/embeddings",
        &json!({ "model": "mock-embedding", "input": "count me" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("service=\"mock-llm\"")
                && l.contains("route=\"/v1/embeddings\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| {
            panic!("no http_requests_total line for the embeddings request:\n{text}")
        });
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{line}");
}
