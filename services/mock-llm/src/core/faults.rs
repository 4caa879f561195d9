//! Fault injection, for tests of retries, fallbacks, timeouts and cut streams.
//!
//! Directives come from request headers (`x-mock-status: 503`) or from a path prefix
//! (`/x/status=503,latency-ms=200/v1/chat/completions`). The prefix exists because a gateway
//! does not forward its clients' headers: putting it in a provider entry's base URL makes that
//! entry fail in a chosen way. Headers win over the prefix.
//!
//! | directive | effect |
//! |---|---|
//! | `status=N` | answer with HTTP status N and the dialect's error body |
//! | `latency-ms=N` | wait N ms before answering |
//! | `chunk-delay-ms=N` | wait N ms between stream chunks |
//! | `fail-after-chunks=N` | cut a stream off after N stream events (SSE events or JSON array elements, the opening ones included): no final chunk, no usage |
//! | `completion-tokens=N` | make the reply N tokens long |
//! | `fail-first=N` | with `status`, fail only the first N requests carrying the same `key` |
//! | `key=K` | names a counter for `fail-first` (default: the whole directive string) |

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    pub status: Option<u16>,
    pub latency: Option<Duration>,
    pub chunk_delay: Option<Duration>,
    pub fail_after_chunks: Option<usize>,
    pub completion_tokens: Option<u32>,
    pub fail_first: Option<u64>,
    pub key: Option<String>,
}

/// A directive the mock does not understand; answered with 400 so a typo is not silent.
#[derive(Debug)]
pub struct BadDirective(pub String);

impl Faults {
    /// Reads the path prefix's directives, then the headers over them.
    pub fn from_request(
        path_directives: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Self, BadDirective> {
        let mut faults = Faults::default();
        if let Some(directives) = path_directives {
            for pair in directives.split(',').filter(|p| !p.is_empty()) {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| BadDirective(format!("directive {pair:?} is not name=value")))?;
                faults.set(name, value)?;
            }
            faults.key.get_or_insert_with(|| directives.to_owned());
        }
        for (name, value) in headers {
            if let Some(directive) = name.as_str().strip_prefix("x-mock-") {
                let value = value
                    .to_str()
                    .map_err(|_| BadDirective(format!("header {name} is not text")))?;
                faults.set(directive, value)?;
            }
        }
        Ok(faults)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), BadDirective> {
        let number = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| BadDirective(format!("directive {name}={v:?} needs a whole number")))
        };
        match name {
            "status" => {
                self.status = Some(
                    u16::try_from(number(value)?)
                        .ok()
                        .filter(|s| (100..=599).contains(s))
                        .ok_or_else(|| {
                            BadDirective(format!("status {value} is not an HTTP status"))
                        })?,
                )
            }
            "latency-ms" => self.latency = Some(Duration::from_millis(number(value)?)),
            "chunk-delay-ms" => self.chunk_delay = Some(Duration::from_millis(number(value)?)),
            "fail-after-chunks" => {
                self.fail_after_chunks = Some(usize::try_from(number(value)?).unwrap_or(usize::MAX))
            }
            "completion-tokens" => {
                self.completion_tokens = Some(u32::try_from(number(value)?).unwrap_or(u32::MAX))
            }
            "fail-first" => self.fail_first = Some(number(value)?),
            "key" => self.key = Some(value.to_owned()),
            other => return Err(BadDirective(format!("unknown directive {other:?}"))),
        }
        Ok(())
    }

    /// The status to fail with for this request, if any. With `fail-first`, counts requests
    /// per key in `counters` and fails only the first N.
    pub fn failure(&self, counters: &FailureCounters) -> Option<u16> {
        let status = self.status?;
        match self.fail_first {
            None => Some(status),
            Some(limit) => {
                let seen = counters.bump(self.key.as_deref().unwrap_or(""));
                (seen <= limit).then_some(status)
            }
        }
    }
}

/// Per-key request counts for `fail-first`.
#[derive(Default)]
pub struct FailureCounters(Mutex<HashMap<String, u64>>);

impl FailureCounters {
    fn bump(&self, key: &str) -> u64 {
        // A poisoned lock only means another request panicked mid-update; the map is still usable.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn path_directives_parse_and_headers_win() {
        let mut headers = HeaderMap::new();
        headers.insert("x-mock-latency-ms", HeaderValue::from_static("5"));
        let f = Faults::from_request(
            Some("status=503,latency-ms=200,completion-tokens=7"),
            &headers,
        )
        .unwrap();
        assert_eq!(f.status, Some(503));
        assert_eq!(f.latency, Some(Duration::from_millis(5)));
        assert_eq!(f.completion_tokens, Some(7));
    }

    #[test]
    fn bad_directives_are_reported() {
        let headers = HeaderMap::new();
        assert!(Faults::from_request(Some("status=abc"), &headers).is_err());
        assert!(Faults::from_request(Some("status=99"), &headers).is_err());
        assert!(Faults::from_request(Some("explode=1"), &headers).is_err());
        assert!(Faults::from_request(Some("status"), &headers).is_err());
    }

    #[test]
    fn fail_first_fails_only_the_first_requests_per_key() {
        let counters = FailureCounters::default();
        let f =
            Faults::from_request(Some("status=500,fail-first=2,key=a"), &HeaderMap::new()).unwrap();
        assert_eq!(f.failure(&counters), Some(500));
        assert_eq!(f.failure(&counters), Some(500));
        assert_eq!(f.failure(&counters), None);
        let other =
            Faults::from_request(Some("status=500,fail-first=1,key=b"), &HeaderMap::new()).unwrap();
        assert_eq!(other.failure(&counters), Some(500));
    }
}
