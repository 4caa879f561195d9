//! Server-side request forgery guard for every URL a tenant gives the platform to call (a
//! webhook, a provider entry's `base_url`): it may not reach loopback, private, link-local,
//! unique-local, shared (CGNAT), multicast, reserved or cloud-metadata addresses, unless the
//! operator allows it (`WEBHOOK_ALLOW_PRIVATE`, `PROVIDER_ALLOW_PRIVATE`: local development,
//! the demo's mock-llm, a self-hosted model server).
//!
//! Checked twice: when the URL is stored (a 422 naming the field), and at every connection by
//! the HTTP client's own resolver ([`GuardedResolver`]), so the addresses checked are the
//! addresses connected to. A name that resolved to a public address when stored and to an
//! internal one later (DNS rebinding) is refused at connect time. Address literals never reach
//! a resolver: [`check_literal`] covers them before each call.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a URL may not be called.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("must be an http:// or https:// URL with a host")]
    NotHttp,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must not carry a fragment (#…)")]
    Fragment,
    #[error("{host} resolves to {addr}, a loopback, private, link-local or metadata address")]
    Internal { host: String, addr: IpAddr },
    #[error("{0} could not be resolved")]
    Unresolved(String),
}

/// Whether `ip` is an address a tenant's URL may reach: a global unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: also the metadata service of every large cloud
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local (fc00::/7), AWS's metadata fd00:ec2::254 too
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
}

/// The URL's shape: http(s), a host, no credentials.
pub fn parse(url: &str) -> Result<Url, Refused> {
    let parsed = Url::parse(url).map_err(|_| Refused::NotHttp)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Refused::NotHttp);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Refused::Credentials);
    }
    if parsed.fragment().is_some() {
        return Err(Refused::Fragment);
    }
    Ok(parsed)
}

/// Checks a URL before it is stored: its shape and, unless `allow_private`, every address its
/// host resolves to now.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), Refused> {
    let parsed = parse(url)?;
    if allow_private {
        return Ok(());
    }
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs = resolve(&host, port).await?;
    check_addrs(&host, &addrs)
}

/// Checks the URL's host when it is an address literal, which the resolver never sees.
pub fn check_literal(url: &Url, allow_private: bool) -> Result<(), Refused> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let Ok(addr) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    check_addrs(&addr.to_string(), &[SocketAddr::new(addr, 0)])
}

fn check_addrs(host: &str, addrs: &[SocketAddr]) -> Result<(), Refused> {
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(bad) => Err(Refused::Internal {
            host: host.to_owned(),
            addr: bad.ip(),
        }),
        None => Ok(()),
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    // An address literal "resolves" to itself (brackets of IPv6 literals stripped).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| Refused::Unresolved(host.to_owned()))?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::Unresolved(host.to_owned()));
    }
    Ok(addrs)
}

/// An HTTP client's resolver: the system's, refusing names with any internal address (so a
/// name cannot smuggle one past the check in a list of public ones).
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve(&host, 0).await?;
            if !allow_private {
                check_addrs(&host, &addrs)?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} passed");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} refused");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_unless_allowed() {
        assert!(matches!(
            check_url("http://127.0.0.1:9/hook", false).await,
            Err(Refused::Internal { .. })
        ));
        assert!(matches!(
            check_url("http://[::1]/hook", false).await,
            Err(Refused::Internal { .. })
        ));
        assert!(matches!(
            check_url("http://localhost/hook", false).await,
            Err(Refused::Internal { .. })
        ));
        assert_eq!(
            check_url("ftp://example.com/", false).await,
            Err(Refused::NotHttp)
        );
        assert_eq!(
            check_url("https://u:p@93.184.216.34/", false).await,
            Err(Refused::Credentials)
        );
        assert_eq!(check_url("https://93.184.216.34/hook", false).await, Ok(()));
        assert_eq!(check_url("http://127.0.0.1:9/hook", true).await, Ok(()));
    }
}
