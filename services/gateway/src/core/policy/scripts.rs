//! How the policy's questions are written for Redis: the decisions of a batch as one
//! `EVALSHA` of `policy.lua`, the settlements of a batch as one of `settle.lua`. Each key is
//! named once in KEYS and referred to by number; each question (a request's, a settlement's)
//! is one argument, packed as the scripts read it with `struct.unpack` ([`Packed`]).

use foldhash::HashMap;
use std::sync::{Arc, LazyLock};

use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::WINDOW_MS;
use crate::core::budget::BudgetKeys;

/// A reservation to settle, for `settle.lua`.
#[derive(Debug)]
pub struct Settlement {
    pub(super) reservation: Uuid,
    pub(super) cost: i64,
    /// Real tokens less the estimate, for the tpm window.
    pub(super) correction: i64,
    pub(super) hold_until_ms: u64,
    /// The tpm window the reservation was counted in, when the key has a tpm limit.
    pub(super) tpm: Option<String>,
    pub(super) budgets: Vec<Arc<BudgetKeys>>,
}

static DECIDE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("policy.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle.lua")));

/// One `EVALSHA` settling all of these, to pipeline with their usage events. It fails with
/// `NOSCRIPT` in a Redis that lost the script: then settle each with [`settle_alone`].
pub fn settle_command(settlements: &[&Settlement]) -> redis::Cmd {
    let mut keys = Keys::default();
    for s in settlements {
        if let Some(tpm) = &s.tpm {
            keys.number(tpm);
        }
        for budget in &s.budgets {
            keys.number(&budget.holds);
            keys.number(&budget.leases);
        }
    }
    let bytes: usize = settlements.iter().map(|s| 76 + 16 * s.budgets.len()).sum();
    let mut cmd = keys.evalsha(&SETTLE, 1 + settlements.len(), bytes);
    cmd.arg(settlements.len());
    let mut packed = Packed::default();
    for s in settlements {
        packed.id(&s.reservation);
        packed.int(s.cost);
        packed.int(s.correction);
        packed.int(s.hold_until_ms);
        packed.int(s.tpm.as_deref().map_or(0, |tpm| keys.at(tpm)));
        packed.int(s.budgets.len());
        for budget in &s.budgets {
            packed.int(keys.at(&budget.holds));
            packed.int(keys.at(&budget.leases));
        }
        cmd.arg(packed.0.as_slice());
        packed.0.clear();
    }
    cmd
}

/// Settles on its own, loading the script into a Redis that lost it. (Settlements normally go
/// as one [`settle_command`] in a pipeline with their calls' usage events.)
pub async fn settle_alone(redis: &mut ConnectionManager, settlement: &Settlement) {
    let cmd = settle_command(&[settlement]);
    let result: Result<i64, _> = eval(redis, &SETTLE, &cmd).await;
    if let Err(e) = result {
        // The lease frees the hold when it expires.
        tracing::warn!(error = %e, reservation = %settlement.reservation, "could not settle a reservation; its lease will free it");
    }
}

/// A script's KEYS, each once, numbered from 1 in the order first named; its arguments refer
/// to them by number.
#[derive(Default)]
struct Keys<'a> {
    names: Vec<&'a str>,
    numbers: HashMap<&'a str, usize>,
}

impl<'a> Keys<'a> {
    fn number(&mut self, key: &'a str) {
        if !self.numbers.contains_key(key) {
            self.names.push(key);
            self.numbers.insert(key, self.names.len());
        }
    }

    fn at(&self, key: &str) -> usize {
        self.numbers.get(key).copied().unwrap_or(0)
    }

    /// `EVALSHA <script> <key count> <keys…>`, with room for `args` arguments of `bytes` in
    /// all to follow.
    fn evalsha(&self, script: &Script, args: usize, bytes: usize) -> redis::Cmd {
        let names: usize = self.names.iter().map(|n| n.len()).sum();
        let mut cmd = redis::Cmd::with_capacity(3 + self.names.len() + args, 64 + names + bytes);
        cmd.arg("EVALSHA")
            .arg(script.get_hash())
            .arg(self.names.len());
        for name in &self.names {
            cmd.arg(*name);
        }
        cmd
    }
}

/// Runs `cmd`, an `EVALSHA` of `script`, loading the script first into a Redis that lost it.
async fn eval<T: redis::FromRedisValue>(
    redis: &mut ConnectionManager,
    script: &Script,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    match cmd.query_async(redis).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.load_async(redis).await?;
            cmd.query_async(redis).await
        }
        other => other,
    }
}

/// A question (a decision's, a settlement's) as the scripts read it with Redis's
/// `struct.unpack`: numbers as 8-byte little-endian signed integers (`i8`), ids as their 36
/// characters (`c36`), other text after its length (`i8c0`). One argument per question, as
/// each argument costs redis-rs more to write than its bytes; and binary, as reading numbers
/// from text (a Lua string per word, `strtod` per number) was most of the scripts' time in
/// Redis. (Lua's numbers are doubles: integers are exact up to 2^53, nine billion dollars in
/// micro-dollars.)
#[derive(Default)]
struct Packed(Vec<u8>);

impl Packed {
    /// Saturates at `i64::MAX`, which no count, time or amount here comes near.
    fn int(&mut self, n: impl TryInto<i64>) {
        let n: i64 = n.try_into().unwrap_or(i64::MAX);
        self.0.extend_from_slice(&n.to_le_bytes());
    }

    fn id(&mut self, id: &Uuid) {
        let mut buffer = Uuid::encode_buffer();
        self.0
            .extend_from_slice(id.hyphenated().encode_lower(&mut buffer).as_bytes());
    }

    fn text(&mut self, text: &str) {
        self.int(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }
}

/// One request's question to `policy.lua`, its keys by name (the batch numbers them).
pub(super) struct Question {
    pub(super) now_ms: u64,
    pub(super) estimated_tokens: u64,
    pub(super) reservation: Uuid,
    pub(super) lease_until_ms: u64,
    pub(super) key_ttl_ms: u64,
    /// Limit, current window's counter, previous window's counter.
    pub(super) rpm: Option<(u32, String, String)>,
    pub(super) tpm: Option<(u32, String, String)>,
    pub(super) budgets: Vec<BudgetQuestion>,
}

pub(super) struct BudgetQuestion {
    pub(super) keys: Arc<BudgetKeys>,
    pub(super) limit: i64,
    pub(super) cost: i64,
    pub(super) blocks: bool,
}

/// The script's reply for one request: its line, words separated by spaces.
pub(super) type Answer = Result<String, redis::RedisError>;

/// Decides a batch with one run of `policy.lua` (loading it into a Redis that lost it).
pub(super) async fn decide_batch(
    mut redis: ConnectionManager,
    questions: Vec<Question>,
) -> Vec<Answer> {
    let cmd = decide_command(&questions);
    let reply: Result<String, _> = eval(&mut redis, &DECIDE, &cmd).await;
    match reply {
        Ok(reply) if reply.split('\n').count() == questions.len() => {
            reply.split('\n').map(|line| Ok(line.to_owned())).collect()
        }
        Ok(reply) => {
            let e = redis::RedisError::from((
                redis::ErrorKind::Client,
                "the policy script answered the wrong number of requests",
                format!("{} for {}", reply.split('\n').count(), questions.len()),
            ));
            questions.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) => questions.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// The `EVALSHA` of `policy.lua` for these questions: each key once, the rate counters first.
fn decide_command(questions: &[Question]) -> redis::Cmd {
    let mut keys = Keys::default();
    let limits = questions.iter().flat_map(|q| [&q.rpm, &q.tpm]).flatten();
    for (_, current, previous) in limits {
        keys.number(current);
        keys.number(previous);
    }
    let rate_keys = keys.names.len();
    for b in questions.iter().flat_map(|q| &q.budgets) {
        keys.number(&b.keys.mirror);
        keys.number(&b.keys.holds);
        keys.number(&b.keys.leases);
    }
    let bytes: usize = questions.iter().map(|q| 132 + 66 * q.budgets.len()).sum();
    let mut cmd = keys.evalsha(&DECIDE, 3 + questions.len(), bytes);
    cmd.arg(WINDOW_MS).arg(rate_keys).arg(questions.len());
    let mut packed = Packed::default();
    for q in questions {
        packed.int(q.now_ms);
        packed.int(q.now_ms % WINDOW_MS);
        packed.int(q.estimated_tokens);
        packed.id(&q.reservation);
        packed.int(q.lease_until_ms);
        packed.int(q.key_ttl_ms);
        for limit in [&q.rpm, &q.tpm] {
            match limit {
                Some((limit, current, previous)) => {
                    packed.int(*limit);
                    packed.int(keys.at(current));
                    packed.int(keys.at(previous));
                }
                None => (0..3).for_each(|_| packed.int(0)),
            }
        }
        packed.int(q.budgets.len());
        for b in &q.budgets {
            packed.int(keys.at(&b.keys.mirror));
            packed.int(keys.at(&b.keys.holds));
            packed.int(keys.at(&b.keys.leases));
            packed.text(&b.keys.period);
            packed.int(b.limit);
            packed.int(b.cost);
            packed.int(b.blocks);
        }
        cmd.arg(packed.0.as_slice());
        packed.0.clear();
    }
    cmd
}
