-- The gateway's policy decision, in one round trip: rate limits, then budgets, then (only if
-- everything passes) the reservation. Nothing is written unless the request is admitted.
--
-- KEYS: rpm current window, rpm previous window, tpm current, tpm previous,
--       then for each budget: its mirror (ledger-owned), its holds hash, its leases zset.
-- ARGV: now_ms, window_ms, window_elapsed_ms, rpm_limit (0: none), tpm_limit (0: none),
--       estimated tokens, reservation id, lease expiry (ms), key ttl (ms), budget count,
--       then for each budget: period (YYYY-MM-DD), limit, estimated cost, blocks (1/0).
--
-- A budget's holds hash has `total`, one field per call in flight (reservation id → estimated
-- cost) and one per second in which settled costs stop being held (`s:<second>` → their sum,
-- written by settle.lua). Its leases zset gives each of those fields (but `total`) its expiry.
--
-- Returns one of:
--   {'ok', rpm_remaining, tpm_remaining}
--   {'rate', 'requests'|'tokens', retry_after_ms}
--   {'budget', budget index (1-based), spent, held}
--   {'missing', i, j, ...}  budget mirrors absent: rebuild them from Postgres, then ask again
local now, window, elapsed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rpm_limit, tpm_limit, tokens = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local reservation, lease, ttl, n = ARGV[7], ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])

-- Sliding window estimate: the previous window's count, weighted by how much of it still
-- overlaps the last `window` ms, plus the current window's count.
local weight = (window - elapsed) / window
local rates = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local function used(cur, prev)
    return (tonumber(rates[cur]) or 0) + (tonumber(rates[prev]) or 0) * weight
end
local rpm_remaining, tpm_remaining = -1, -1
if rpm_limit > 0 then
    local u = used(1, 2)
    if u + 1 > rpm_limit then return {'rate', 'requests', window - elapsed} end
    rpm_remaining = math.floor(rpm_limit - u - 1)
end
if tpm_limit > 0 then
    local u = used(3, 4)
    if u + tokens > tpm_limit and u > 0 then return {'rate', 'tokens', window - elapsed} end
    tpm_remaining = math.max(0, math.floor(tpm_limit - u - tokens))
end

local missing = {}
for i = 1, n do
    local mirror, holds, leases = KEYS[4 + 3 * i - 2], KEYS[4 + 3 * i - 1], KEYS[4 + 3 * i]
    local period, limit = ARGV[10 + 4 * i - 3], tonumber(ARGV[10 + 4 * i - 2])
    local cost, blocks = tonumber(ARGV[10 + 4 * i - 1]), ARGV[10 + 4 * i]
    local stored = redis.call('HMGET', mirror, 'period', 'spent')
    if not stored[1] then
        missing[#missing + 1] = i
    elseif #missing == 0 then
        -- An older period in the mirror means nothing is spent in this one yet.
        local spent = 0
        if stored[1] == period then spent = tonumber(stored[2]) or 0 end
        -- Expired leases (crashed calls, settled seconds the ledger has counted) free their
        -- hold. At most 100 per call, so expired holds never stall Redis at once; the rest go
        -- with the next calls (they only make the budget look fuller meanwhile).
        local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 100)
        if #expired > 0 then
            local amounts = redis.call('HMGET', holds, unpack(expired))
            local freed = 0
            for j = 1, #expired do freed = freed + (tonumber(amounts[j]) or 0) end
            -- (Only a hash that exists is written: one created here would have no expiry.)
            if freed ~= 0 then redis.call('HINCRBY', holds, 'total', -freed) end
            redis.call('HDEL', holds, unpack(expired))
            redis.call('ZREM', leases, unpack(expired))
        end
        local held = tonumber(redis.call('HGET', holds, 'total')) or 0
        if blocks == '1' and spent + held + cost > limit then
            return {'budget', i, spent, held}
        end
    end
end
if #missing > 0 then
    table.insert(missing, 1, 'missing')
    return missing
end

-- Admitted: count the request and its tokens, and hold the estimated cost on every budget.
-- A counter's expiry is set when the counter is created; a budget's keys live `ttl` past their
-- last reservation.
if rpm_limit > 0 and redis.call('INCR', KEYS[1]) == 1 then
    redis.call('PEXPIRE', KEYS[1], 2 * window)
end
if tpm_limit > 0 and redis.call('INCRBY', KEYS[3], tokens) == tokens then
    redis.call('PEXPIRE', KEYS[3], 2 * window)
end
for i = 1, n do
    local holds, leases = KEYS[4 + 3 * i - 1], KEYS[4 + 3 * i]
    local cost = tonumber(ARGV[10 + 4 * i - 1])
    redis.call('HSET', holds, reservation, cost)
    redis.call('HINCRBY', holds, 'total', cost)
    redis.call('ZADD', leases, lease, reservation)
    redis.call('PEXPIRE', holds, ttl)
    redis.call('PEXPIRE', leases, ttl)
end
return {'ok', rpm_remaining, tpm_remaining}
