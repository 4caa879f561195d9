-- The gateway's policy decisions, in one round trip: for each request of the batch, in order,
-- rate limits, then budgets, then (only if everything passes) the reservation. A request is
-- decided exactly as if it ran alone after the ones before it; nothing is written for a request
-- that is not admitted. Reads happen once per key and writes once per key, at the end.
--
-- KEYS: the rate counters first (ARGV[2] of them), then the budgets' mirrors (ledger-owned),
--       holds hashes and leases zsets. Each request names its keys by index.
-- ARGV: window_ms, rate key count, request count, then for each request one argument, packed
--       as `struct.unpack` reads it (numbers as little-endian 8-byte integers; see scripts.rs):
--         now_ms, window_elapsed_ms, estimated tokens, reservation id (36 characters), lease
--         expiry (ms), key ttl (ms), rpm limit (0: none), rpm current, rpm previous, tpm limit
--         (0: none), tpm current, tpm previous, budget count,
--         then for each budget: mirror, holds, leases, period (its length, then YYYY-MM-DD),
--         limit, estimated cost, blocks (1/0).
--       (current/previous/mirror/holds/leases are KEYS indexes; 0 when there is no limit.)
--
-- A budget's holds hash has `total`, one field per call in flight (reservation id → estimated
-- cost), one per second in which settled costs stop being held (`s:<second>` → their sum,
-- written by settle.lua), `next` (no lease ends before it: expired leases are looked for only
-- once it has passed) and `expires` (when both keys expire, refreshed only once less than a
-- request's key ttl is left, so most decisions leave the expiry alone). Its leases zset gives
-- each of the per-call and per-second fields its expiry, and holds `end` at `expires`, so it
-- is never emptied (and re-created without an expiry) while the hash lives.
--
-- Returns one string: a line per request (words separated by spaces; one reply value for the
-- whole batch is much cheaper for the gateway to read than nested arrays), each one of:
--   ok <rpm_remaining> <tpm_remaining>
--   rate requests|tokens <retry_after_ms>
--   budget <budget index (1-based)> <spent> <held>
--   missing <i> <j> ...  budget mirrors absent: rebuild them from Postgres, then ask again
local window, rate_keys, requests = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

-- Rate counters as they stand, with this batch's admissions added as they happen.
local rates, added = {}, {}
if rate_keys > 0 then
    local stored = redis.call('MGET', unpack(KEYS, 1, rate_keys))
    for i = 1, rate_keys do rates[i], added[i] = tonumber(stored[i]) or 0, 0 end
end

-- A budget's spend (nil: its mirror is missing) and holds, read once per batch. Once `next`
-- has passed, expired leases (crashed calls, settled seconds the ledger has counted) free their
-- hold first: at most 100 per budget and batch, so expired holds never stall Redis at once; the
-- rest go with the next calls (they only make the budget look fuller meanwhile).
local mirrors, held, holds_read = {}, {}, {}
local function spent_of(mirror, period)
    if mirrors[mirror] == nil then
        local stored = redis.call('HMGET', KEYS[mirror], 'period', 'spent')
        mirrors[mirror] = stored[1] and { stored[1], tonumber(stored[2]) or 0 } or false
    end
    local m = mirrors[mirror]
    if not m then return nil end
    -- An older period in the mirror means nothing is spent in this one yet.
    if m[1] == period then return m[2] end
    return 0
end
local function held_of(holds, leases, now)
    if held[holds] == nil then
        local stored = redis.call('HMGET', KEYS[holds], 'total', 'next', 'expires')
        local total, first = tonumber(stored[1]) or 0, tonumber(stored[2])
        local swept = false
        if not first or first <= now then
            local expired = redis.call('ZRANGEBYSCORE', KEYS[leases], '-inf', now, 'LIMIT', 0, 100)
            if #expired > 0 then
                local amounts = redis.call('HMGET', KEYS[holds], unpack(expired))
                for j = 1, #expired do total = total - (tonumber(amounts[j]) or 0) end
                redis.call('HDEL', KEYS[holds], unpack(expired))
                redis.call('ZREM', KEYS[leases], unpack(expired))
            end
            first = tonumber(redis.call('ZRANGE', KEYS[leases], 0, 0, 'WITHSCORES')[2])
            -- (Only a hash that exists is written back: one created here would have no expiry.)
            swept = stored[1] ~= false
        end
        held[holds] = total
        holds_read[holds] = { first = first, expires = tonumber(stored[3]) or 0, swept = swept }
    end
    return held[holds]
end

-- What is written back, per holds hash: the admitted requests' fields and leases, its new
-- `total` and `next`, and its keys' expiry when due.
local writes, order = {}, {}
local function write_of(holds, leases)
    local w = writes[holds]
    if not w then
        w = { fields = {}, members = {}, leases = leases, now = 0, ttl = 0 }
        writes[holds] = w
        order[#order + 1] = holds
    end
    return w
end

-- A request's question, then each of its budgets. Reading numbers from text (a Lua string per
-- word, strtod per number) was most of a decision's time in Redis; struct.unpack reads them
-- at once.
local QUESTION = '<i8i8i8c36i8i8i8i8i8i8i8i8i8'
local BUDGET = '<i8i8i8i8c0i8i8i8'
local replies = {}
local mirror_of, holds_of, leases_of, period_of, limit_of, cost_of, blocks_of = {}, {}, {}, {}, {}, {}, {}
for r = 1, requests do
    local question = ARGV[3 + r]
    local now, elapsed, tokens, reservation, lease, ttl, rpm_limit, rpm_cur, rpm_prev,
        tpm_limit, tpm_cur, tpm_prev, n, pos = struct.unpack(QUESTION, question)
    for i = 1, n do
        mirror_of[i], holds_of[i], leases_of[i], period_of[i], limit_of[i], cost_of[i],
            blocks_of[i], pos = struct.unpack(BUDGET, question, pos)
    end

    -- Sliding window estimate: the previous window's count, weighted by how much of it still
    -- overlaps the last `window` ms, plus the current window's count.
    local weight = (window - elapsed) / window
    local reply
    local rpm_remaining, tpm_remaining = -1, -1
    if rpm_limit > 0 then
        local u = rates[rpm_cur] + rates[rpm_prev] * weight
        if u + 1 > rpm_limit then
            reply = string.format('rate requests %d', window - elapsed)
        else
            rpm_remaining = math.floor(rpm_limit - u - 1)
        end
    end
    if not reply and tpm_limit > 0 then
        local u = rates[tpm_cur] + rates[tpm_prev] * weight
        if u + tokens > tpm_limit and u > 0 then
            reply = string.format('rate tokens %d', window - elapsed)
        else
            tpm_remaining = math.max(0, math.floor(tpm_limit - u - tokens))
        end
    end

    if not reply then
        local missing = {}
        for i = 1, n do
            local spent = spent_of(mirror_of[i], period_of[i])
            if spent == nil then
                missing[#missing + 1] = i
            elseif #missing == 0 then
                local holds = holds_of[i]
                local h = held_of(holds, leases_of[i], now)
                if holds_read[holds].swept then write_of(holds, leases_of[i]) end
                if blocks_of[i] == 1 and spent + h + cost_of[i] > limit_of[i] then
                    reply = string.format('budget %d %d %d', i, spent, h)
                    break
                end
            end
        end
        if not reply and #missing > 0 then
            reply = 'missing ' .. table.concat(missing, ' ')
        end
    end

    if not reply then
        -- Admitted: count the request and its tokens, and hold the estimated cost on every
        -- budget.
        if rpm_limit > 0 then
            rates[rpm_cur], added[rpm_cur] = rates[rpm_cur] + 1, added[rpm_cur] + 1
        end
        if tpm_limit > 0 then
            rates[tpm_cur], added[tpm_cur] = rates[tpm_cur] + tokens, added[tpm_cur] + tokens
        end
        for i = 1, n do
            local holds, cost = holds_of[i], cost_of[i]
            held[holds] = held[holds] + cost
            local w = write_of(holds, leases_of[i])
            w.fields[#w.fields + 1] = reservation
            w.fields[#w.fields + 1] = cost
            w.members[#w.members + 1] = lease
            w.members[#w.members + 1] = reservation
            local r = holds_read[holds]
            if not r.first or lease < r.first then r.first = lease end
            w.now = math.max(w.now, now)
            w.ttl = math.max(w.ttl, ttl)
        end
        if rpm_remaining == -1 and tpm_remaining == -1 then
            reply = 'ok -1 -1'
        else
            reply = string.format('ok %d %d', rpm_remaining, tpm_remaining)
        end
    end
    replies[r] = reply
end

-- A counter's expiry is set when the counter is created. A budget's keys live at least `ttl`
-- past their last reservation: when less is left, they get twice that.
for i = 1, rate_keys do
    if added[i] > 0 and redis.call('INCRBY', KEYS[i], added[i]) == added[i] then
        redis.call('PEXPIRE', KEYS[i], 2 * window)
    end
end
for _, holds in ipairs(order) do
    local w, r = writes[holds], holds_read[holds]
    local fields, members = w.fields, w.members
    fields[#fields + 1] = 'total'
    fields[#fields + 1] = held[holds]
    local refresh = w.ttl > 0 and r.expires - w.now < w.ttl
    if refresh then
        r.expires = w.now + 2 * w.ttl
        fields[#fields + 1] = 'expires'
        fields[#fields + 1] = r.expires
        members[#members + 1] = r.expires
        members[#members + 1] = 'end'
        if not r.first or r.expires < r.first then r.first = r.expires end
    end
    if r.first then
        fields[#fields + 1] = 'next'
        fields[#fields + 1] = r.first
    end
    redis.call('HSET', KEYS[holds], unpack(fields))
    if #members > 0 then redis.call('ZADD', KEYS[w.leases], unpack(members)) end
    if refresh then
        redis.call('PEXPIRE', KEYS[holds], 2 * w.ttl)
        redis.call('PEXPIRE', KEYS[w.leases], 2 * w.ttl)
    end
end
return table.concat(replies, '\n')
