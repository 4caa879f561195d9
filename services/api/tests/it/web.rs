//! The embedded dashboard through the api's real HTTP stack: `/` and deep links answer with
//! the app (or, in a build without `web/dist`, a page saying how to build it), hashed assets
//! are immutable, the page is revalidated, and the API's own paths keep their answers and their
//! problem+json 404s whatever the client accepts.

use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use reqwest::{Method, Response};

use crate::support::Api;

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn fetch(api: &Api, method: Method, path: &str, accept: &str) -> Response {
    api.http
        .request(method, api.url(path))
        .header(ACCEPT, accept)
        .send()
        .await
        .unwrap()
}

fn header(res: &Response, name: reqwest::header::HeaderName) -> &str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `src` of every `<script>` in `html`; panics on an inline script (the CSP forbids them).
fn script_sources(html: &str) -> Vec<String> {
    html.split("<script")
        .skip(1)
        .map(|tag| {
            let open = &tag[..tag.find('>').unwrap()];
            let src = open
                .split("src=\"")
                .nth(1)
                .unwrap_or_else(|| panic!("an inline script: <script{open}>"));
            src[..src.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root_with_its_caching_rules() {
    let api = Api::new().await;
    let root = fetch(&api, Method::GET, "/", "*/*").await;
    assert_eq!(root.status(), 200);
    assert!(header(&root, CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header(&root, CACHE_CONTROL), "no-cache");
    assert!(header(&root, CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
    let html = root.text().await.unwrap();
    let scripts = script_sources(&html);
    if scripts.is_empty() {
        // A binary built before the frontend: the page says how to build it.
        assert!(html.contains("npm run build"), "{html}");
        return;
    }
    for src in scripts {
        assert!(src.starts_with("/assets/"), "{src}");
        let asset = fetch(&api, Method::GET, &src, "*/*").await;
        assert_eq!(asset.status(), 200, "{src}");
        assert_eq!(
            header(&asset, CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert!(header(&asset, CONTENT_TYPE).contains("javascript"));
    }
    // The page is revalidated by its ETag.
    let again = fetch(&api, Method::GET, "/", BROWSER).await;
    let etag = header(&again, reqwest::header::ETAG).to_owned();
    let revalidated = api
        .http
        .get(api.url("/"))
        .header(reqwest::header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
}

#[tokio::test]
async fn deep_links_get_the_app_only_when_a_browser_asks_for_html() {
    let api = Api::new().await;
    let root = fetch(&api, Method::GET, "/", BROWSER)
        .await
        .text()
        .await
        .unwrap();
    let deep = fetch(&api, Method::GET, "/api-keys", BROWSER).await;
    assert_eq!(deep.status(), 200);
    assert_eq!(header(&deep, CACHE_CONTROL), "no-cache");
    assert_eq!(deep.text().await.unwrap(), root);
    // `fetch`, `curl` and other methods get the api's 404.
    for (method, path, accept) in [
        (Method::GET, "/api-keys", "application/json"),
        (Method::GET, "/api-keys", "*/*"),
        (Method::POST, "/api-keys", BROWSER),
        (Method::GET, "/assets/index-00000000.js", BROWSER),
        (Method::GET, "/favicon.ico", "image/avif,image/webp,*/*"),
    ] {
        let res = fetch(&api, method.clone(), path, accept).await;
        assert_eq!(res.status(), 404, "{method} {path} ({accept})");
    }
}

#[tokio::test]
async fn api_paths_keep_their_answers_and_their_404s_for_a_browser() {
    let api = Api::new().await;
    for path in [
        "/api/v1/nope",
        "/api/v1/tenants/00000000-0000-0000-0000-000000000000/nope",
        "/api",
        "/v1/nope",
        "/graphql/nope",
        "/health/nope",
        "/metrics/nope",
    ] {
        let res = fetch(&api, Method::GET, path, BROWSER).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            header(&res, CONTENT_TYPE),
            "application/problem+json",
            "{path}"
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "no_such_route", "{path}");
    }
    let doc = fetch(&api, Method::GET, "/openapi.json", BROWSER).await;
    assert_eq!(doc.status(), 200);
    assert!(header(&doc, CONTENT_TYPE).starts_with("application/json"));
    let app = fetch(&api, Method::GET, "/", BROWSER)
        .await
        .text()
        .await
        .unwrap();
    let docs = fetch(&api, Method::GET, "/docs", BROWSER).await;
    assert_eq!(docs.status(), 200);
    assert_ne!(docs.text().await.unwrap(), app);
    // Swagger UI answers under /docs itself (a bare 404 for a file it lacks), never the app.
    let missing = fetch(&api, Method::GET, "/docs/nope", BROWSER).await;
    assert_eq!(missing.status(), 404);
    assert_ne!(missing.text().await.unwrap(), app);
    // socket.io answers its own paths (the engine.io handshake), never with the app.
    let sio = fetch(
        &api,
        Method::GET,
        "/socket.io/?EIO=4&transport=polling",
        BROWSER,
    )
    .await;
    assert_ne!(sio.text().await.unwrap(), app);
    assert_eq!(
        fetch(&api, Method::GET, "/health", BROWSER).await.status(),
        200
    );
    // A signed-out API call stays a 401, not the app.
    let me = fetch(&api, Method::GET, "/api/v1/me", BROWSER).await;
    assert_eq!(me.status(), 401);
}
