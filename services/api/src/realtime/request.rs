//! What a socket keeps of the HTTP request that opened it. engineioxide stores the handshake
//! request's parts (method, URI, headers, extensions) for the socket's whole life, and hyper
//! hands the URI and the header values out as slices of its connection read buffer (16 KiB).
//! Stored as they come, they would pin that buffer for as long as the WebSocket stays open:
//! 16 of the 40 kB an idle connection held (docs/benchmarks.md, "Realtime"). Copies of their
//! own let the buffer go once the connection is upgraded.

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, Uri};
use tower_http::request_id::RequestId;

/// `req` with its URI, its headers and the extensions known to share hyper's buffer (axum's
/// `OriginalUri`, tower-http's `RequestId`) copied into allocations of their own.
pub fn detach(mut req: Request) -> Request {
    let uri = owned_uri(req.uri());
    *req.uri_mut() = uri;
    let headers = owned_headers(req.headers());
    *req.headers_mut() = headers;
    if let Some(OriginalUri(original)) = req.extensions().get::<OriginalUri>() {
        let original = owned_uri(original);
        req.extensions_mut().insert(OriginalUri(original));
    }
    if let Some(id) = req.extensions().get::<RequestId>() {
        let id = RequestId::new(owned_value(id.header_value()));
        req.extensions_mut().insert(id);
    }
    req
}

fn owned_uri(uri: &Uri) -> Uri {
    // Parsing a `String` makes the `Uri` own its bytes; the same text always parses again.
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn owned_value(value: &HeaderValue) -> HeaderValue {
    // `from_bytes` copies; it accepts everything hyper's parser let through.
    let mut owned = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
    owned.set_sensitive(value.is_sensitive());
    owned
}

fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    // Names parsed by hyper are already owned (standard ones are static, others copied).
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        owned.append(name.clone(), owned_value(value));
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_request_keeps_everything_but_the_shared_buffer() {
        // Stands for hyper's read buffer, which the parsed request slices.
        let buffer = axum::body::Bytes::from(
            b"/socket.io/?EIO=4&transport=websocket websocket dGhlIHNhbXBsZQ== a b".to_vec(),
        );
        let mut req = Request::new(axum::body::Body::empty());
        *req.uri_mut() = Uri::from_maybe_shared(buffer.slice(0..37)).unwrap();
        let upgrade = HeaderValue::from_maybe_shared(buffer.slice(38..47)).unwrap();
        req.headers_mut()
            .insert(axum::http::header::UPGRADE, upgrade);
        req.headers_mut()
            .append("x-twice", HeaderValue::from_static("a"));
        req.headers_mut()
            .append("x-twice", HeaderValue::from_static("b"));
        let uri = req.uri().clone();
        req.extensions_mut().insert(OriginalUri(uri));
        assert!(!buffer.is_unique());

        let req = detach(req);
        assert!(
            buffer.is_unique(),
            "the request still shares the read buffer"
        );
        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(req.uri().query(), Some("EIO=4&transport=websocket"));
        assert_eq!(req.headers()[axum::http::header::UPGRADE], "websocket");
        let twice: Vec<_> = req.headers().get_all("x-twice").iter().collect();
        assert_eq!(twice, ["a", "b"]);
        assert_eq!(
            req.extensions().get::<OriginalUri>().map(|u| u.0.clone()),
            Some(req.uri().clone())
        );
    }
}
