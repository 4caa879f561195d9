//! `/health`, `/health/ready`, `/health/detailed` and `/metrics` on the four platform services.

use std::net::SocketAddr;

use sb_runtime::{App, Infra};
use sb_testkit::{RunningApp, TestDb, TestRedis, spawn, test_config};
use secrecy::SecretString;
use serde_json::Value;

type Build = fn(
    &Infra,
    SocketAddr,
) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<App>> + Send + '_>>;

const SERVICES: &[(&str, Build)] = &[
    ("gateway", |i, a| Box::pin(gateway(i, a))),
    ("api", |i, a| Box::pin(api(i, a))),
    ("agent-worker", |i, a| Box::pin(agent_worker(i, a))),
    ("ledger", |i, a| Box::pin(ledger(i, a))),
];

fn default_config() -> sb_config::Config {
    let source = sb_config::Source::from_pairs([
        ("JWT_SECRET", "x".repeat(32)),
        ("ENCRYPTION_MASTER_KEY", "y".repeat(32)),
    ]);
    sb_config::Config::from_source(&source, false).unwrap()
}

/// The ledger with its default settings.
async fn ledger(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    sb_ledger::build(infra, &default_config(), addr).await
}

async fn agent_worker(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    sb_agent_worker::build(infra, &default_config(), addr).await
}

async fn api(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    sb_api::build(infra, &default_config(), addr)
        .await
        .map_err(std::io::Error::other)
}

/// The gateway with its default settings, its usage buffer in a directory of its own.
async fn gateway(infra: &Infra, addr: SocketAddr) -> std::io::Result<App> {
    let mut config = default_config();
    config.gateway.buffer_dir =
        std::env::temp_dir().join(format!("sb-health-{}", uuid::Uuid::now_v7()));
    sb_gateway::build(infra, &config, addr).await
}

async fn start(build: Build, config: &sb_config::Config) -> RunningApp {
    let infra = Infra::connect_lazy(config).unwrap();
    spawn(build(&infra, "127.0.0.1:0".parse().unwrap()).await.unwrap())
}

async fn get(app: &RunningApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(app.url(path)).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn every_service_answers_health_detailed_health_and_metrics() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let config = test_config(&db, &redis);
    for (name, build) in SERVICES {
        let app = start(*build, &config).await;

        let (status, headers, body) = get(&app, "/health").await;
        assert_eq!(status, 200, "{name} /health");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, serde_json::json!({ "status": "ok", "service": name }));
        assert!(
            headers.contains_key("x-request-id"),
            "{name}: every response carries a request id"
        );

        let (status, _, body) = get(&app, "/health/ready").await;
        assert_eq!(status, 200, "{name} /health/ready: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "status": "ready", "service": name })
        );

        let (status, _, body) = get(&app, "/health/detailed").await;
        assert_eq!(status, 200, "{name} /health/detailed: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["service"], *name);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(body["uptime_seconds"].is_u64());
        for dependency in ["postgres", "redis"] {
            assert_eq!(
                body["checks"][dependency]["status"], "up",
                "{name}: {dependency} in {body}"
            );
            assert!(body["checks"][dependency]["latency_ms"].as_f64().unwrap() >= 0.0);
        }
        assert_eq!(body["checks"]["postgres"]["pool"]["max"], 5);

        let (status, headers, text) = get(&app, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let counter = format!(
            "http_requests_total{{service=\"{name}\",method=\"GET\",route=\"/health\",status=\"200\"}} "
        );
        assert!(
            text.lines().any(|l| l.starts_with(&counter)),
            "{name}: no {counter} in\n{text}"
        );
        let histogram = format!(
            "http_request_duration_seconds_bucket{{service=\"{name}\",method=\"GET\",route=\"/health/detailed\",status=\"200\",le=\"0.0005\"}}"
        );
        assert!(text.contains(&histogram), "{name}: no {histogram}");
        assert!(
            text.contains(&format!(
                "db_pool_connections{{service=\"{name}\",state=\"max\"}} 5"
            )),
            "{name}: pool gauge"
        );
        app.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_client_request_id_is_kept() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let app = start(SERVICES[0].1, &test_config(&db, &redis)).await;
    let response = reqwest::Client::new()
        .get(app.url("/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn detailed_health_is_503_when_redis_is_unreachable() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config(&db, &redis);
    // Nothing listens on port 1.
    config.redis.url = SecretString::from("redis://127.0.0.1:1");
    for (name, build) in SERVICES {
        let app = start(*build, &config).await;
        let (status, _, _) = get(&app, "/health").await;
        assert_eq!(status, 200, "{name}: liveness does no I/O, so it stays up");
        let (status, _, body) = get(&app, "/health/detailed").await;
        assert_eq!(status, 503, "{name}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["checks"]["redis"]["status"], "down");
        assert!(body["checks"]["redis"]["error"].is_string());
        assert_eq!(body["checks"]["postgres"]["status"], "up");
    }
}

#[tokio::test]
async fn detailed_health_is_503_when_postgres_is_unreachable() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config(&db, &redis);
    config.database.app_url = SecretString::from("postgres://switchboard_app@127.0.0.1:1/nowhere");
    config.database.acquire_timeout = std::time::Duration::from_millis(500);
    let app = start(SERVICES[0].1, &config).await;
    let (status, _, body) = get(&app, "/health/detailed").await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["checks"]["postgres"]["status"], "down");
    assert_eq!(body["checks"]["redis"]["status"], "up");
}

#[tokio::test]
async fn with_metrics_port_metrics_and_detailed_health_leave_the_public_ports() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config(&db, &redis);
    config.listen.metrics_port = Some(0);
    let infra = Infra::connect_lazy(&config).unwrap();
    let internal = spawn(
        App::bind(
            "metrics",
            "127.0.0.1:0".parse().unwrap(),
            sb_runtime::health::internal_router("switchboard", &infra),
        )
        .await
        .unwrap(),
    );
    for (name, build) in SERVICES {
        let app = spawn(build(&infra, "127.0.0.1:0".parse().unwrap()).await.unwrap());
        for path in ["/health", "/health/ready"] {
            assert_eq!(get(&app, path).await.0, 200, "{name} {path}");
        }
        for path in ["/metrics", "/health/detailed"] {
            let (status, _, body) = get(&app, path).await;
            assert_eq!(status, 404, "{name} {path} is internal only: {body}");
        }
        app.stop().await.unwrap();
    }
    let (status, _, body) = get(&internal, "/health/detailed").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["service"], "switchboard");
    let (status, _, text) = get(&internal, "/metrics").await;
    assert_eq!(status, 200);
    // The services' own requests are counted in the one registry it serves.
    assert!(
        text.contains("route=\"/health/ready\""),
        "the public ports' requests are in the internal listener's metrics:\n{text}"
    );
}
