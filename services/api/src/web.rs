//! The admin dashboard at `/`: the single-page app built from `web/` (`npm run build` writes
//! `web/dist`), embedded in the binary by `rust-embed` (release builds; debug builds read
//! `web/dist` from disk, so a rebuilt frontend shows without recompiling Rust).
//!
//! It is the router's fallback, so it can never shadow a route: everything the api serves
//! keeps its path, and within the API's own prefixes an unknown path stays a problem+json 404.
//! The rules:
//!
//! - hashed files under `/assets/` are cached for a year as `immutable` (a new build has new
//!   names), and a missing one is a plain 404, never the app;
//! - `index.html` is `no-cache` (revalidated with its `ETag` every time), so a deploy is seen
//!   at once;
//! - any other `GET` that asks for HTML (a deep link such as `/api-keys` or a reload) gets
//!   `index.html` and the app routes it in the browser; requests that do not ask for HTML
//!   (`fetch`, `curl`, images) get the 404.
//!
//! A binary built without the frontend (`allow_missing`) answers `/` with a page saying how
//! to build it.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

// Relative to this crate's Cargo.toml: rust-embed resolves it against CARGO_MANIFEST_DIR, in
// debug builds too, so the cwd does not matter and no env-interpolating feature is needed.
#[derive(rust_embed::Embed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Dist;

/// The api's own paths: the dashboard never answers under them.
const API_PREFIXES: &[&str] = &[
    "/api",
    "/v1",
    "/graphql",
    "/socket.io",
    "/docs",
    "/openapi.json",
    "/health",
    "/metrics",
];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// The dashboard's answer to a request no route took, or `None` when it is not the
/// dashboard's (the caller answers 404).
pub fn respond(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let embedded = |name: &str| {
        Dist::get(name).map(|f| File {
            mime: f.metadata.mimetype().to_owned(),
            etag: etag(&f.metadata.sha256_hash()),
            bytes: f.data,
        })
    };
    decide(&embedded, method, uri.path(), headers)
}

/// One file of the build: its bytes, its media type and a validator.
struct File {
    bytes: Cow<'static, [u8]>,
    mime: String,
    etag: String,
}

fn decide<G>(get: &G, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response>
where
    G: Fn(&str) -> Option<File>,
{
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    if is_api_path(path) || path.split('/').any(|s| s == ".." || s.contains('\\')) {
        return None;
    }
    if path.starts_with("/assets/") {
        // Only files the build wrote; `..` or an unknown name is simply not found.
        return get(path.trim_start_matches('/')).map(|f| file(f, IMMUTABLE, headers));
    }
    let name = path.trim_start_matches('/');
    if !name.is_empty() && name != "index.html" {
        // A file Vite copied from `web/public` (robots.txt, icons): served as it is.
        if let Some(f) = get(name) {
            return Some(file(f, NO_CACHE, headers));
        }
    }
    let own_page = path == "/" || path == "/index.html";
    if !own_page && !wants_html(headers) {
        return None;
    }
    Some(match get("index.html") {
        Some(index) => file(index, NO_CACHE, headers),
        None => not_built(),
    })
}

fn is_api_path(path: &str) -> bool {
    API_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A browser navigating asks for `text/html` first; `fetch` and `curl` do not.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/html")))
}

fn etag(hash: &[u8; 32]) -> String {
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn file(f: File, cache: &'static str, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == f.etag));
    let etag = HeaderValue::from_str(&f.etag).ok();
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mime = HeaderValue::from_str(&f.mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        ([(header::CONTENT_TYPE, mime)], Body::from(f.bytes)).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(etag) = etag {
        h.insert(header::ETAG, etag);
    }
    response
}

/// What `/` says when the binary was built without `web/dist`.
fn not_built() -> Response {
    const PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
        <title>Switchboard: the dashboard is not built</title></head><body>\
        <h1>The dashboard is not part of this build</h1>\
        <p>This api was compiled before its frontend was built. Build it, then the binary:</p>\
        <pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build\ncargo build -p switchboard</pre>\
        <p><code>scripts/demo</code>, <code>scripts/test</code> and the Docker image do this \
        for you. The REST API (<a href=\"/docs\">/docs</a>), GraphQL and socket.io work \
        without it.</p></body></html>\n";
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, NO_CACHE),
        ],
        PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Option<File> {
        let body: &'static [u8] = match name {
            "index.html" => b"<!doctype html><title>app</title>",
            "assets/index-abc123.js" => b"console.log(1)",
            "robots.txt" => b"User-agent: *",
            _ => return None,
        };
        Some(File {
            bytes: Cow::Borrowed(body),
            mime: mime_of(name).to_owned(),
            etag: format!("\"{}\"", body.len()),
        })
    }

    fn mime_of(name: &str) -> &'static str {
        if name.ends_with(".html") {
            "text/html"
        } else if name.ends_with(".js") {
            "text/javascript"
        } else {
            "text/plain"
        }
    }

    fn html() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        h
    }

    fn answer(method: Method, path: &str, headers: &HeaderMap) -> Option<(u16, String)> {
        decide(&fixture, &method, path, headers).map(|r| {
            let cache = r
                .headers()
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (r.status().as_u16(), cache)
        })
    }

    #[test]
    fn hashed_assets_are_immutable_and_the_page_is_revalidated() {
        let none = HeaderMap::new();
        assert_eq!(
            answer(Method::GET, "/assets/index-abc123.js", &none),
            Some((200, IMMUTABLE.into()))
        );
        assert_eq!(
            answer(Method::GET, "/", &none),
            Some((200, NO_CACHE.into()))
        );
        assert_eq!(
            answer(Method::GET, "/robots.txt", &none),
            Some((200, NO_CACHE.into()))
        );
        // A missing asset is not found, even for a browser: never the app in its place.
        assert_eq!(answer(Method::GET, "/assets/gone-000.js", &html()), None);
        assert_eq!(answer(Method::GET, "/assets/../index.html", &html()), None);
    }

    #[test]
    fn the_app_answers_only_html_gets_outside_the_api() {
        assert_eq!(
            answer(Method::GET, "/api-keys", &html()),
            Some((200, NO_CACHE.into()))
        );
        assert_eq!(answer(Method::GET, "/api-keys", &HeaderMap::new()), None);
        assert_eq!(answer(Method::POST, "/api-keys", &html()), None);
        for path in [
            "/api",
            "/api/v1/nope",
            "/v1/nope",
            "/graphql/x",
            "/socket.io/",
            "/docs/nope",
            "/openapi.json",
            "/health/nope",
            "/metrics",
        ] {
            assert_eq!(answer(Method::GET, path, &html()), None, "{path}");
        }
        // Only whole segments: `/apiary` is the app's.
        assert!(answer(Method::GET, "/apiary", &html()).is_some());
    }

    #[test]
    fn a_matching_etag_is_not_modified() {
        let mut h = html();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"33\""));
        assert_eq!(answer(Method::GET, "/", &h), Some((304, NO_CACHE.into())));
    }

    #[test]
    fn without_a_build_the_page_says_how_to_make_one() {
        let nothing = |_: &str| None;
        let r = decide(&nothing, &Method::GET, "/", &HeaderMap::new());
        assert!(r.is_some_and(|r| r.status() == StatusCode::OK));
        assert!(decide(&nothing, &Method::GET, "/assets/x.js", &html()).is_none());
    }
}
