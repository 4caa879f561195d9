//! The Redis mirror of each budget's spend (contract in `sb_contracts::budget`), written after
//! each batch commits and repaired by the reconciler. A write carries the rollup's revision and
//! is ignored when Redis already holds a newer one for the same period, or a later period, so
//! concurrent writers can never move a counter backwards.

use redis::Script;
use redis::aio::ConnectionManager;
use sb_contracts::budget::mirror_key;

use crate::core::record::BudgetSpend;

/// KEYS[1]: the budget's hash. ARGV: period (YYYY-MM-DD), spent, revision.
/// Returns { written (0/1), previous spent or -1 when there was none for this period }.
const SET_IF_NEWER: &str = r#"
local stored = redis.call('HMGET', KEYS[1], 'period', 'spent', 'revision')
local period, spent, revision = ARGV[1], ARGV[2], tonumber(ARGV[3])
local previous = -1
if stored[1] then
    if stored[1] > period then return {0, -1} end
    if stored[1] == period then
        previous = tonumber(stored[2]) or -1
        if (tonumber(stored[3]) or 0) > revision then return {0, previous} end
    end
end
redis.call('HSET', KEYS[1], 'period', period, 'spent', spent, 'revision', revision)
return {1, previous}
"#;

/// What writing one mirror did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirrored {
    pub written: bool,
    /// The spend Redis held for this period before, if any.
    pub previous: Option<i64>,
}

/// Writes each budget's spend to Redis, in one pipeline of EVALSHA calls.
pub async fn write(
    conn: &mut ConnectionManager,
    prefix: &str,
    spends: &[BudgetSpend],
) -> Result<Vec<Mirrored>, redis::RedisError> {
    if spends.is_empty() {
        return Ok(Vec::new());
    }
    let script = Script::new(SET_IF_NEWER);
    let mut pipe = redis::pipe();
    for spend in spends {
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(mirror_key(prefix, spend.budget_id))
            .arg(spend.period_start.format("%Y-%m-%d").to_string())
            .arg(spend.spent.0)
            .arg(spend.revision);
    }
    let replies: Vec<(i64, i64)> = match pipe.query_async(conn).await {
        Ok(replies) => replies,
        // The script is not cached (a fresh or restarted Redis): load it, then retry once.
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            let _: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(SET_IF_NEWER)
                .query_async(conn)
                .await?;
            pipe.query_async(conn).await?
        }
        Err(e) => return Err(e),
    };
    Ok(replies
        .into_iter()
        .map(|(written, previous)| Mirrored {
            written: written == 1,
            previous: (previous >= 0).then_some(previous),
        })
        .collect())
}
