//! Rate limits for the account endpoints: sliding windows kept in Redis
//! (`{prefix}ratelimit:{kind}:{id}`) so that every api instance shares them and they survive a
//! restart. If Redis is unreachable the limiter falls back to windows in this process, and
//! says so loudly: an error in the log on every fallen-back check, and the
//! `auth_rate_limit_fallback` gauge (1) in `/metrics`. (`/health/detailed` already answers 503
//! while Redis is down.)
//!
//! One attempt is checked against several windows at once (per address, per client IP,
//! global: [`auth`] says which), in one round trip. An attempt either counts whenever it is
//! let through ([`Mode::Take`]), or, for logins, is checked first ([`Mode::Peek`]) and counted
//! only if it fails ([`Mode::Add`]), so successful logins never use up a window.

pub mod auth;
mod memory;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use redis::aio::ConnectionManager;

use memory::Memory;

/// A kind of limited attempt, with its window, for the limits of one subject only.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// 10 per 15 minutes, per e-mail address: asking a signed-in user's password again.
    Login,
    /// 5 per 15 minutes, per user.
    SecondFactor,
}

impl Limit {
    fn window(self) -> Window {
        match self {
            Limit::Login => Window::new("confirm", "", 10, 15 * 60),
            Limit::SecondFactor => Window::new("2fa", "", 5, 15 * 60),
        }
    }
}

/// One sliding window: `allowed` attempts per `period`, under `{kind}:{subject}`.
#[derive(Clone, Debug)]
pub struct Window {
    kind: &'static str,
    subject: String,
    allowed: u32,
    period: Duration,
    /// Skipped for a client that has signed in as this address from this IP before (see
    /// [`auth`]).
    waived_when_known: bool,
}

impl Window {
    pub fn new(kind: &'static str, subject: &str, allowed: u32, seconds: u64) -> Self {
        Self {
            kind,
            subject: subject.to_owned(),
            allowed,
            period: Duration::from_secs(seconds),
            waived_when_known: false,
        }
    }

    fn waived_when_known(mut self) -> Self {
        self.waived_when_known = true;
        self
    }

    fn with_subject(mut self, subject: &str) -> Self {
        subject.clone_into(&mut self.subject);
        self
    }
}

/// What an attempt does to its windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Refused if any window is full; otherwise counted in every window.
    Take,
    /// Refused if any window is full; counted nowhere.
    Peek,
    /// Counted in every window, whether full or not.
    Add,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Take => "take",
            Mode::Peek => "peek",
            Mode::Add => "add",
        }
    }
}

/// KEYS[1]: the "known client" marker (it waives the windows flagged so); KEYS[2..]: the
/// windows. ARGV: now (ms), a random member suffix, the mode, then per window its period
/// (ms), its bound and whether the marker waives it. Returns 0, or the milliseconds until
/// every full window has room. Members are `now:random`, so attempts in the same millisecond
/// all count.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local mode = ARGV[3]
local known = redis.call('EXISTS', KEYS[1]) == 1
local wait = 0
for i = 2, #KEYS do
  local base = 4 + (i - 2) * 3
  local period = tonumber(ARGV[base])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - period)
  if mode ~= 'add' and not (known and ARGV[base + 2] == '1')
     and redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[base + 1]) then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + period - now
    if w > wait then wait = w end
  end
end
if wait > 0 or mode == 'peek' then return wait end
for i = 2, #KEYS do
  local period = tonumber(ARGV[4 + (i - 2) * 3])
  redis.call('ZADD', KEYS[i], now, ARGV[1] .. ':' .. ARGV[2])
  redis.call('PEXPIRE', KEYS[i], period)
end
return 0
";

pub struct Limiter {
    redis: ConnectionManager,
    prefix: String,
    script: Script,
    fallback: Memory,
}

impl Limiter {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            script: Script::new(SCRIPT),
            fallback: Memory::default(),
        }
    }

    /// Counts one attempt of `limit` by `subject`; `Err(seconds)` says when to retry.
    pub async fn check(&self, limit: Limit, subject: &str) -> Result<(), u64> {
        self.attempt(Mode::Take, None, &[limit.window().with_subject(subject)])
            .await
    }

    /// Checks (and, by `mode`, counts) one attempt against `windows`; `known` names the
    /// marker that waives the windows flagged so. `Err(seconds)` says when to retry.
    pub async fn attempt(
        &self,
        mode: Mode,
        known: Option<&str>,
        windows: &[Window],
    ) -> Result<(), u64> {
        let now = now_ms();
        let known = self.key("known", known.unwrap_or("-"));
        let keys: Vec<String> = windows
            .iter()
            .map(|w| self.key(w.kind, &w.subject))
            .collect();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(&known)
            .arg(now.to_string())
            .arg(rand::random::<u32>())
            .arg(mode.as_str());
        for (key, window) in keys.iter().zip(windows) {
            invocation
                .key(key)
                .arg(window.period.as_millis().to_string())
                .arg(window.allowed)
                .arg(u8::from(window.waived_when_known));
        }
        let mut redis = self.redis.clone();
        let answer: Result<i64, _> = invocation.invoke_async(&mut redis).await;
        let wait_ms = match answer {
            Ok(wait) => {
                metrics::gauge!("auth_rate_limit_fallback").set(0.0);
                u128::try_from(wait).unwrap_or(0)
            }
            Err(e) => {
                self.fell_back(&e);
                self.fallback.attempt(mode, &known, &keys, windows, now)
            }
        };
        if wait_ms == 0 {
            Ok(())
        } else {
            Err(u64::try_from(wait_ms.div_ceil(1000))
                .unwrap_or(u64::MAX)
                .max(1))
        }
    }

    /// Sets the marker `known` for `ttl`: the windows flagged so no longer hold it back.
    pub async fn mark_known(&self, known: &str, ttl: Duration) {
        let key = self.key("known", known);
        let mut redis = self.redis.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let set: Result<(), _> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut redis)
            .await;
        if let Err(e) = set {
            self.fell_back(&e);
            self.fallback.mark_known(&key, now_ms() + ttl.as_millis());
        }
    }

    fn key(&self, kind: &str, subject: &str) -> String {
        format!("{}ratelimit:{kind}:{subject}", self.prefix)
    }

    fn fell_back(&self, e: &redis::RedisError) {
        tracing::error!(error = %e, "Redis unreachable: auth rate limits fall back to this process's memory and are no longer shared");
        metrics::gauge!("auth_rate_limit_fallback").set(1.0);
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}
