//! Who is calling: the client address that rate limits and the audit log use.
//!
//! `X-Forwarded-For` is whatever the client wrote, plus whatever each proxy on the way
//! appended. Only the entries appended by our own proxies can be believed, so the header is
//! read only when the TCP peer is one of them (`TRUSTED_PROXIES`), and from the right: the
//! first entry that is not itself a trusted proxy is the client. Anything a client writes
//! to the left of that, or sends to a service with no proxy in front, changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use sb_config::Cidr;

/// The client's address, as a request extension (set by [`layer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key rate limits count under: the address itself for IPv4, its /64 for IPv6 (one
    /// subscriber usually holds a whole /64, so single IPv6 addresses cost an attacker
    /// nothing).
    pub fn limit_key(&self) -> String {
        match self.0.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

/// The client of a request from `peer` carrying `headers`, given the trusted proxies.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Every X-Forwarded-For header, in order, as one list; walked from the right.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(client) {
                    return client;
                }
            }
            // Not an address (a port, `unknown`, garbage): the last proxy we trust forwarded
            // it, and it is the last address we can vouch for.
            Err(_) => return client,
        }
    }
    client
}

/// Adds [`ClientIp`] to every request of `router`. Needs the peer address
/// (`into_make_service_with_connect_info`, as `App::run` serves); without it the request
/// gets no `ClientIp`.
pub fn layer(router: Router, trusted: &[Cidr]) -> Router {
    let trusted: Arc<[Cidr]> = trusted.into();
    router.layer(middleware::from_fn(move |mut req: Request, next: Next| {
        let trusted = trusted.clone();
        async move {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            if let Some(peer) = peer {
                let ip = resolve(peer, req.headers(), &trusted);
                req.extensions_mut().insert(ClientIp(ip));
            }
            let response: Response = next.run(req).await;
            response
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&["1.2.3.4"]);
        assert_eq!(resolve(ip("203.0.113.9"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(resolve(ip("203.0.113.9"), &h, &[]), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_peer_names_the_rightmost_untrusted_hop() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client wrote 1.2.3.4 itself; the proxy appended the real peer.
        let h = headers(&["1.2.3.4, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        assert_eq!(
            resolve(ip("::ffff:10.0.0.2"), &h, &trusted),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&["198.51.100.7, unknown"]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &trusted), ip("10.0.0.2"));
        // No header: the proxy itself.
        assert_eq!(
            resolve(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(
            ClientIp(ip("2001:db8:1:2:3:4:5:6")).limit_key(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(ClientIp(ip("::ffff:192.0.2.1")).limit_key(), "192.0.2.1");
    }
}
