//! Bad input: malformed JSON, wrong types, missing and unknown fields, oversized bodies, very
//! long strings, unicode and SQL-looking strings. Each gets a clear 400/413/415/422 naming the
//! field and changes nothing; valid strange input is stored verbatim.

use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_change_nothing() {
    let api = Api::with(|c| c.api.max_body_bytes = 16 * 1024).await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let url = api.url(&format!("/api/v1/tenants/{t}/workspaces"));
    let send = |body: String, content_type: &'static str| {
        let req = api
            .http
            .post(url.clone())
            .bearer_auth(&owner.token)
            .header("content-type", content_type)
            .body(body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            assert_eq!(
                res.headers()["content-type"],
                "application/problem+json",
                "status {status}"
            );
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = send("{\"name\": ".into(), "application/json").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, body) = send("{\"name\": 42}".into(), "application/json").await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("name"))
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("string"),
        "{body}"
    );
    let (status, body) = send("{}".into(), "application/json").await;
    assert_eq!(status, 422);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{body}"
    );
    let (status, body) = send(
        "{\"name\": \"x\", \"colour\": 1}".into(),
        "application/json",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("body")
            || body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("colour"),
        "{body}"
    );
    let (status, body) = send("name=x".into(), "application/x-www-form-urlencoded").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(20_000));
    let (status, body) = send(huge, "application/json").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let long = format!("{{\"name\": \"{}\"}}", "é".repeat(201));
    let (status, body) = send(long, "application/json").await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("name"))
    );
    let (status, _) = send("{\"name\": \"a\\u0000b\"}".into(), "application/json").await;
    assert_eq!(status, 422, "control characters are refused");
    assert_eq!(api.count("SELECT count(*) FROM workspaces").await, 0);
    assert_eq!(
        api.count("SELECT count(*) FROM audit_log WHERE action LIKE 'workspace.%'")
            .await,
        0
    );

    // Strange but valid names are stored exactly as sent.
    for name in [
        "Robert'); DROP TABLE workspaces;--",
        "日本語のワークスペース 🚀",
        "<script>alert(1)</script>",
        "1 OR 1=1",
    ] {
        let created = api
            .post(
                &format!("/api/v1/tenants/{t}/workspaces"),
                &owner.token,
                json!({"name": name}),
            )
            .await
            .expect(201);
        assert_eq!(created["name"], name);
    }
    let listed = api
        .get(&format!("/api/v1/tenants/{t}/workspaces"), &owner.token)
        .await
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 4);

    // Several problems are named together.
    let bad = api
        .public(
            "/api/v1/auth/signup",
            json!({"email": "not-an-address", "password": "short", "tenant": {"name": "", "slug": "Bad Slug"}}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "tenant.name", "tenant.slug"]);
    assert_eq!(api.count("SELECT count(*) FROM users").await, 1);
}
