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

#[tokio::test]
async fn graphql_bodies_are_json_and_limited_like_rest() {
    let api = Api::with(|c| c.api.max_body_bytes = 4096).await;
    let (owner, _) = api.owner("o@example.com", "acme").await;
    let huge =
        serde_json::json!({"query": format!("{{ me {{ email }} }} #{}", "x".repeat(10_000))});
    let res = api.post("/graphql", &owner.token, huge).await;
    assert_eq!((res.status.as_u16(), res.code()), (413, "body_too_large"));
    let multipart = api
        .http
        .post(api.url("/graphql"))
        .bearer_auth(&owner.token)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--")
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status().as_u16(), 415);
}

/// A client that sends headers and then trickles (or never finishes) its body must not hold a
/// database connection: with a pool of two, five stalled uploads leave the api answering.
#[tokio::test]
async fn stalled_uploads_hold_no_database_connection() {
    use tokio::io::AsyncWriteExt;
    let api = Api::with(|c| {
        c.database.max_connections = 2;
        c.database.acquire_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(api.app.addr).await.unwrap();
        let head = format!(
            "POST /api/v1/tenants/{t}/workspaces HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\":",
            owner.token
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        stalled.push(tcp);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // With the connections held, this would wait out the pool's 2 s and answer 503.
    api.get(&format!("/api/v1/tenants/{t}/workspaces"), &owner.token)
        .await
        .expect(200);
    drop(stalled);
}

/// The attack: a burst of anonymous logins, each an Argon2id hash of 19 MiB and tens of
/// milliseconds. Past `PASSWORD_HASH_CONCURRENCY` hashes at once the api answers 503 with
/// `Retry-After` instead of taking more memory and CPU; the rest are answered as usual.
#[tokio::test]
async fn password_hashing_past_its_bound_is_answered_503_with_retry_after() {
    let api = Api::with(|c| c.api.password_hash_concurrency = 1).await;
    let attempts = (0..30).map(|i| {
        api.http
            .post(api.url("/api/v1/auth/login"))
            .json(&serde_json::json!({
                "email": format!("nobody{i}@example.test"),
                "password": "not the password at all",
            }))
            .send()
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut refused = 0;
    let mut busy = 0;
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            401 => refused += 1,
            503 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                let problem: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(problem["code"], "busy", "{problem}");
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 1, "some logins were checked");
    assert!(busy >= 1, "30 logins at once never met the bound of 1");
}
