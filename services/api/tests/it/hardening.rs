//! HTTP hardening: security headers on every answer, CORS only for the configured origins and
//! never with credentials, problem+json for unknown routes and methods.

use crate::support::Api;

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let api = Api::new().await;
    for path in [
        "/api/v1/me",
        "/openapi.json",
        "/docs/",
        "/health",
        "/nowhere",
    ] {
        let res = api.http.get(api.url(path)).send().await.unwrap();
        let h = res.headers();
        for name in [
            "strict-transport-security",
            "x-frame-options",
            "x-content-type-options",
            "referrer-policy",
            "permissions-policy",
            "content-security-policy",
        ] {
            assert!(h.contains_key(name), "{path} lacks {name}");
        }
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("x-request-id"), "{path}");
    }
    let unknown = api.http.get(api.url("/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    let wrong = api.http.put(api.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 405);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn cors_admits_the_configured_origins_only() {
    let api = Api::with(|c| c.cors_origins = vec!["https://dash.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        api.http
            .request(reqwest::Method::OPTIONS, api.url("/api/v1/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://dash.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    assert!(
        !allowed
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}
