//! Rate limits for the account endpoints: a sliding window per kind and subject, kept in Redis
//! (`{prefix}ratelimit:{kind}:{id}`) so that every api instance shares it and it survives a
//! restart. If Redis is unreachable the limiter falls back to a window in this process, and
//! says so loudly: an error in the log on every fallen-back check, and the
//! `auth_rate_limit_fallback` gauge (1) in `/metrics`. (`/health/detailed` already answers 503
//! while Redis is down.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use redis::aio::ConnectionManager;

/// A kind of limited attempt, with its window.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// 10 per 15 minutes, per e-mail address.
    Login,
    /// 5 per 15 minutes, per user.
    SecondFactor,
    /// 3 per hour, per e-mail address.
    PasswordReset,
    /// 3 per 5 minutes, per user.
    EmailResend,
}

impl Limit {
    pub fn kind(self) -> &'static str {
        match self {
            Limit::Login => "login",
            Limit::SecondFactor => "2fa",
            Limit::PasswordReset => "reset",
            Limit::EmailResend => "resend",
        }
    }

    pub fn allowed(self) -> u32 {
        match self {
            Limit::Login => 10,
            Limit::SecondFactor => 5,
            Limit::PasswordReset | Limit::EmailResend => 3,
        }
    }

    pub fn window(self) -> Duration {
        Duration::from_secs(match self {
            Limit::Login | Limit::SecondFactor => 15 * 60,
            Limit::PasswordReset => 3600,
            Limit::EmailResend => 5 * 60,
        })
    }
}

/// Counts an attempt if the window has room: returns 0, or the milliseconds until it will.
/// Members are `now:random`, so attempts in the same millisecond all count.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local allowed = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= allowed then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
";

pub struct Limiter {
    redis: ConnectionManager,
    prefix: String,
    script: Script,
    fallback: Mutex<HashMap<String, Vec<u128>>>,
}

impl Limiter {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            script: Script::new(SCRIPT),
            fallback: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt of `limit` by `subject`; `Err(seconds)` says when to retry.
    pub async fn check(&self, limit: Limit, subject: &str) -> Result<(), u64> {
        let now = now_ms();
        let window = limit.window().as_millis();
        let key = format!("{}ratelimit:{}:{}", self.prefix, limit.kind(), subject);
        let mut redis = self.redis.clone();
        let answer: Result<i64, _> = self
            .script
            .key(&key)
            .arg(now.to_string())
            .arg(window.to_string())
            .arg(limit.allowed())
            .arg(rand::random::<u32>())
            .invoke_async(&mut redis)
            .await;
        let wait_ms = match answer {
            Ok(wait) => {
                metrics::gauge!("auth_rate_limit_fallback").set(0.0);
                u128::try_from(wait).unwrap_or(0)
            }
            Err(e) => {
                tracing::error!(error = %e, kind = limit.kind(), "Redis unreachable: auth rate limits fall back to this process's memory and are no longer shared");
                metrics::gauge!("auth_rate_limit_fallback").set(1.0);
                self.check_in_memory(&key, now, window, limit.allowed())
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

    fn check_in_memory(&self, key: &str, now: u128, window: u128, allowed: u32) -> u128 {
        let mut map = self
            .fallback
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            map.retain(|_, hits| hits.iter().any(|t| *t + window > now));
        }
        let hits = map.entry(key.to_owned()).or_default();
        hits.retain(|t| *t + window > now);
        if hits.len() >= allowed as usize {
            return hits.first().map_or(1, |oldest| oldest + window - now);
        }
        hits.push(now);
        0
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}
