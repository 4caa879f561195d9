-- Settles a batch of reservations, each to its call's real cost. A real cost stays held until
-- its `until` (by then the ledger has counted it in the mirror's `spent`); 0 held (or until 0)
-- frees it at once. Settled costs are held per second (`s:<second>`, the second `until` falls
-- in, rounded up), so a budget's hash and zset hold a few dozen fields, not one per call of the
-- last `until`. Each key is read and written once per batch, and `next` (see policy.lua) is
-- lowered to the earliest new second. (The keys' expiry was set by the decision and outlives a
-- hold settled within the reservation's lease; see mod.rs.)
--
-- KEYS: the tpm counters and the budgets' holds hashes and leases zsets, named by index.
-- ARGV: reservation count, then for each one argument, packed as `struct.unpack` reads it
--       (numbers as little-endian 8-byte integers; see scripts.rs): reservation id (36
--       characters), real cost, token correction (real - estimated), until (ms), tpm counter
--       (0: no tpm limit), budget count, then for each budget its holds and its leases.
local count = tonumber(ARGV[1])
local corrections, corrected = {}, {}
local settles, order = {}, {}
for r = 1, count do
    local settlement = ARGV[1 + r]
    local reservation, cost, correction, hold_until, tpm, n, pos =
        struct.unpack('<c36i8i8i8i8i8', settlement)
    if tpm > 0 and correction ~= 0 then
        if not corrections[tpm] then
            corrections[tpm] = 0
            corrected[#corrected + 1] = tpm
        end
        corrections[tpm] = corrections[tpm] + correction
    end
    for i = 1, n do
        local holds, leases
        holds, leases, pos = struct.unpack('<i8i8', settlement, pos)
        local s = settles[holds]
        if not s then
            s = { leases = leases, ids = {}, costs = {}, untils = {} }
            settles[holds] = s
            order[#order + 1] = holds
        end
        s.ids[#s.ids + 1] = reservation
        s.costs[#s.costs + 1] = cost
        s.untils[#s.untils + 1] = hold_until
    end
end

for _, tpm in ipairs(corrected) do
    if corrections[tpm] ~= 0 and redis.call('EXISTS', KEYS[tpm]) == 1 then
        redis.call('INCRBY', KEYS[tpm], corrections[tpm])
    end
end

-- Per budget: one read (`total`, `next`, the seconds that may grow, the reservations) and one
-- write of the hash, then the leases.
for _, holds in ipairs(order) do
    local s = settles[holds]
    local seconds, slot = {}, {}
    for j = 1, #s.ids do
        if s.untils[j] > 0 and s.costs[j] > 0 then
            local second = math.ceil(s.untils[j] / 1000)
            if not slot[second] then
                seconds[#seconds + 1] = second
                slot[second] = #seconds
            end
        end
    end
    local fields = { 'total', 'next' }
    for _, second in ipairs(seconds) do fields[#fields + 1] = 's:' .. second end
    for _, id in ipairs(s.ids) do fields[#fields + 1] = id end
    local old = redis.call('HMGET', KEYS[holds], unpack(fields))
    local total, first = tonumber(old[1]) or 0, tonumber(old[2])
    local buckets, gone = {}, {}
    for j = 1, #s.ids do
        local held = tonumber(old[2 + #seconds + j])
        if held then
            gone[#gone + 1] = s.ids[j]
            total = total - held
            if s.untils[j] > 0 and s.costs[j] > 0 then
                local k = slot[math.ceil(s.untils[j] / 1000)]
                buckets[k] = (buckets[k] or tonumber(old[2 + k]) or 0) + s.costs[j]
                total = total + s.costs[j]
            end
        end
    end
    if #gone > 0 then
        local sets, members = { 'total', total }, {}
        for k, second in ipairs(seconds) do
            if buckets[k] then
                sets[#sets + 1] = 's:' .. second
                sets[#sets + 1] = buckets[k]
                members[#members + 1] = second * 1000
                members[#members + 1] = 's:' .. second
                if not first or second * 1000 < first then first = second * 1000 end
            end
        end
        if first then
            sets[#sets + 1] = 'next'
            sets[#sets + 1] = first
        end
        redis.call('HSET', KEYS[holds], unpack(sets))
        -- The seconds are added before the reservations go: removing a set's last member
        -- deletes the key, and a key created here would have no expiry.
        if #members > 0 then redis.call('ZADD', KEYS[s.leases], unpack(members)) end
        redis.call('HDEL', KEYS[holds], unpack(gone))
        redis.call('ZREM', KEYS[s.leases], unpack(gone))
    end
end
return 1
