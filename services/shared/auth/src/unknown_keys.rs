//! A guard in front of the database for API keys that do not exist.
//!
//! Every API key is looked up by its hash in Postgres. A cache of found keys does nothing
//! against a flood of *random* keys: each one misses and costs a query. This guard
//!
//! - remembers the hashes that were not found, for a short while ([`NEGATIVE_TTL`]), in a map
//!   of bounded size, so a client repeating a bad key (an old key in a config file, a retry
//!   loop) costs one query per period;
//! - counts lookups that found nothing per client IP, and past [`FAILURES_PER_IP`] in a
//!   minute refuses that IP's further lookups of keys it does not already know until the
//!   minute has passed; and past [`FAILURES_IN_ALL`] in a minute across all IPs (a
//!   distributed flood) refuses every lookup of an unknown hash.
//!
//! So a flood of random keys makes at most [`FAILURES_PER_IP`] queries per IP and minute, and
//! at most [`FAILURES_IN_ALL`] per process and minute.
//!
//! Nothing here ever *accepts* a key: a remembered miss only refuses, and keys that exist are
//! never remembered as misses after they are found. A key created after its hash was
//! remembered as missing is not a case that can arise: the server generates the secret when
//! it creates the key, so nobody can have presented it before; the period is short anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a hash that was not found is answered "unknown" without a query.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Hashes remembered as missing at most (32 bytes and an instant each: about 5 MB).
pub const MAX_MISSES: usize = 100_000;
/// Lookups that found nothing, per client IP (an IPv6 client's /64) and minute.
pub const FAILURES_PER_IP: u32 = 20;
/// Lookups that found nothing, across all clients, per minute.
pub const FAILURES_IN_ALL: u32 = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// What to do with a hash that no cache of found keys holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Look it up in the database.
    LookUp,
    /// It was not found a moment ago: unknown, no query.
    Unknown,
    /// This client (or everyone) has had too many misses: refuse for this long, no query.
    TooMany(Duration),
}

#[derive(Default)]
pub struct UnknownKeys {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    misses: HashMap<[u8; 32], Instant>,
    /// Misses per client in the current minute: (start of the minute, count).
    failures: HashMap<IpAddr, (Instant, u32)>,
    all: (Option<Instant>, u32),
}

impl UnknownKeys {
    /// Before a database lookup of `hash` for `client` (`None`: the address is unknown, all
    /// such clients share one count).
    pub fn check(&self, hash: &[u8; 32], client: Option<IpAddr>) -> Verdict {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(at) = state.misses.get(hash) {
            if now.duration_since(*at) < NEGATIVE_TTL {
                return Verdict::Unknown;
            }
            state.misses.remove(hash);
        }
        if let (Some(start), count) = state.all
            && count >= FAILURES_IN_ALL
            && now.duration_since(start) < WINDOW
        {
            return Verdict::TooMany(WINDOW - now.duration_since(start));
        }
        if let Some((start, count)) = state.failures.get(&limit_key(client))
            && *count >= FAILURES_PER_IP
            && now.duration_since(*start) < WINDOW
        {
            return Verdict::TooMany(WINDOW - now.duration_since(*start));
        }
        Verdict::LookUp
    }

    /// A lookup of `hash` for `client` found nothing.
    pub fn missed(&self, hash: [u8; 32], client: Option<IpAddr>) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.misses.len() >= MAX_MISSES {
            state
                .misses
                .retain(|_, at| now.duration_since(*at) < NEGATIVE_TTL);
        }
        // Still full: this one is not remembered (the per-IP count still bounds the queries),
        // rather than dropping what is remembered.
        if state.misses.len() < MAX_MISSES {
            state.misses.insert(hash, now);
        }
        state.all = match state.all {
            (Some(start), count) if now.duration_since(start) < WINDOW => (Some(start), count + 1),
            _ => (Some(now), 1),
        };
        // At most FAILURES_IN_ALL clients can fail within a minute, which bounds the map.
        if state.failures.len() >= FAILURES_IN_ALL as usize {
            state
                .failures
                .retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = state.failures.entry(limit_key(client)).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The address misses are counted under: an IPv6 client's /64 (one subscriber usually holds a
/// whole /64), an IPv4 client's address, or the unspecified address for an unknown client.
fn limit_key(client: Option<IpAddr>) -> IpAddr {
    match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let bits = u128::from(v6) >> 64 << 64;
            IpAddr::V6(bits.into())
        }
        Some(v4) => v4,
        None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_hash(n: u32) -> [u8; 32] {
        let mut h = [7u8; 32];
        h[..4].copy_from_slice(&n.to_be_bytes());
        h
    }

    #[test]
    fn a_flood_from_one_client_is_cut_off_and_others_still_look_up() {
        let guard = UnknownKeys::default();
        let attacker: IpAddr = "203.0.113.9".parse().unwrap();
        let mut lookups = 0;
        for n in 0..1_000 {
            let hash = random_hash(n);
            if guard.check(&hash, Some(attacker)) == Verdict::LookUp {
                lookups += 1;
                guard.missed(hash, Some(attacker));
            }
        }
        assert_eq!(lookups, FAILURES_PER_IP);
        assert!(matches!(
            guard.check(&random_hash(5_000), Some(attacker)),
            Verdict::TooMany(_)
        ));
        // Another client is not held back, and a remembered miss costs nothing.
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            guard.check(&random_hash(6_000), Some(other)),
            Verdict::LookUp
        );
        assert_eq!(guard.check(&random_hash(0), Some(other)), Verdict::Unknown);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let guard = UnknownKeys::default();
        for n in 0..FAILURES_PER_IP {
            let ip: IpAddr = format!("2001:db8:0:1::{n:x}").parse().unwrap();
            guard.missed(random_hash(n), Some(ip));
        }
        let next: IpAddr = "2001:db8:0:1::ffff".parse().unwrap();
        assert!(matches!(
            guard.check(&random_hash(999), Some(next)),
            Verdict::TooMany(_)
        ));
    }
}
