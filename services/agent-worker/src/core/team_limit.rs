//! The per-team limit on agent model calls (`AGENT_TEAM_RPM`): a fixed one-minute window per
//! tenant and team in Redis, shared by every worker. A call over the limit is not made: the
//! run waits for the next window (and `agent_api_rate_limit_hits` counts it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sb_kernel::TenantId;

/// How long to wait before the call may be made (zero: go ahead). Redis being unreachable
/// lets the call through: the gateway's own limits and budgets still apply to it.
pub async fn wait(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    tenant: TenantId,
    team: &str,
    per_minute: u32,
) -> Duration {
    if per_minute == 0 {
        return Duration::ZERO;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let minute = now.as_secs() / 60;
    let key = format!("{prefix}ratelimit:agent-team:{tenant}:{team}:{minute}");
    let counted: Result<(u64, i64), _> = redis::pipe()
        .atomic()
        .incr(&key, 1)
        .expire(&key, 120)
        .query_async(redis)
        .await;
    match counted {
        Ok((count, _)) if count > u64::from(per_minute) => {
            Duration::from_secs((minute + 1) * 60).saturating_sub(now)
        }
        Ok(_) => Duration::ZERO,
        Err(e) => {
            tracing::warn!(error = %e, "the team rate limit could not be read; calling anyway");
            Duration::ZERO
        }
    }
}
