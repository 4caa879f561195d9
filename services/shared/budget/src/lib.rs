//! The budget counters in Redis that the gateway and the ledger share: the mirror of each
//! budget's spend, which the ledger keeps and the gateway reads (and rebuilds when missing),
//! and the names of the gateway's holds beside it.
//!
//! The mirror is a hash at `{prefix}budget:{budget_id}` with `period` (the period's first day,
//! `YYYY-MM-DD` in the tenant's time zone; `1970-01-01` for whole-life budgets), `spent`
//! (micro-dollars recorded by the ledger in that period) and `revision` (grows with every
//! change in Postgres; a write with an older revision is ignored). The ledger writes it after
//! each batch and the reconciler repairs it; a gateway that finds it missing rebuilds it from
//! the rollups. Open reservations are the gateway's and live beside it
//! (`{prefix}budget:{id}:holds` and `:leases`).

use chrono::NaiveDate;
use redis::Script;
use redis::aio::ConnectionManager;
use sb_kernel::Micros;
use uuid::Uuid;

/// The Redis key of a budget's spend mirror.
pub fn mirror_key(prefix: &str, budget_id: Uuid) -> String {
    format!("{prefix}budget:{budget_id}")
}

/// The gateways' holds on a budget (hash: reservation id → micro-dollars for a call in flight,
/// `s:<second>` → settled costs held until that second, `total`, and the gateway's own `next`
/// and `expires`). Other services read only `total`.
pub fn holds_key(prefix: &str, budget_id: Uuid) -> String {
    format!("{prefix}budget:{budget_id}:holds")
}

/// The leases of those holds (sorted set: field of the holds hash → expiry in ms, and `end` at
/// the keys' own expiry).
pub fn leases_key(prefix: &str, budget_id: Uuid) -> String {
    format!("{prefix}budget:{budget_id}:leases")
}

/// A budget's spend in a period, as Postgres has it, for the mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetSpend {
    pub budget_id: Uuid,
    pub period_start: NaiveDate,
    pub spent: Micros,
    pub revision: i64,
}

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
pub async fn write_mirror(
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
