-- Settles a batch of reservations, each to its call's real cost. A real cost stays held until
-- its `until` (by then the ledger has counted it in the mirror's `spent`); 0 held (or until 0)
-- frees it at once. Settled costs are held per second (`s:<second>`, the second `until` falls
-- in, rounded up), so a budget's hash and zset hold a few dozen fields, not one per call of the
-- last `until`. Each key is read and written once per batch. (The keys' expiry was set by the
-- decision and outlives a hold settled within the reservation's lease; see policy.rs.)
--
-- KEYS: the tpm counters and the budgets' holds hashes and leases zsets, named by index.
-- ARGV: reservation count, then for each: reservation id, real cost, token correction
--       (real - estimated), until (ms), tpm counter (0: no tpm limit), budget count, then for
--       each budget its holds and its leases.
local count = tonumber(ARGV[1])
local corrections, corrected = {}, {}
local settles, order = {}, {}
local a = 2
for _ = 1, count do
    local reservation, cost, correction = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local hold_until, tpm, n = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
    if tpm > 0 and correction ~= 0 then
        if not corrections[tpm] then
            corrections[tpm] = 0
            corrected[#corrected + 1] = tpm
        end
        corrections[tpm] = corrections[tpm] + correction
    end
    for i = 1, n do
        local holds, leases = tonumber(ARGV[a + 4 + 2 * i]), tonumber(ARGV[a + 5 + 2 * i])
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
    a = a + 6 + 2 * n
end

for _, tpm in ipairs(corrected) do
    if corrections[tpm] ~= 0 and redis.call('EXISTS', KEYS[tpm]) == 1 then
        redis.call('INCRBY', KEYS[tpm], corrections[tpm])
    end
end

for _, holds in ipairs(order) do
    local s = settles[holds]
    local old = redis.call('HMGET', KEYS[holds], unpack(s.ids))
    local total, gone = 0, {}
    local buckets, seconds = {}, {}
    for j = 1, #s.ids do
        local held = tonumber(old[j])
        if held then
            gone[#gone + 1] = s.ids[j]
            if s.untils[j] > 0 and s.costs[j] > 0 then
                local second = math.ceil(s.untils[j] / 1000)
                if not buckets[second] then
                    buckets[second] = 0
                    seconds[#seconds + 1] = second
                end
                buckets[second] = buckets[second] + s.costs[j]
                total = total + s.costs[j] - held
            else
                total = total - held
            end
        end
    end
    if #gone > 0 then
        -- The seconds are added before the reservations go: removing a set's last member
        -- deletes the key, and a key created here would have no expiry.
        if #seconds > 0 then
            local members = {}
            for _, second in ipairs(seconds) do
                redis.call('HINCRBY', KEYS[holds], 's:' .. second, buckets[second])
                members[#members + 1] = second * 1000
                members[#members + 1] = 's:' .. second
            end
            redis.call('ZADD', KEYS[s.leases], unpack(members))
        end
        if total ~= 0 then redis.call('HINCRBY', KEYS[holds], 'total', total) end
        redis.call('HDEL', KEYS[holds], unpack(gone))
        redis.call('ZREM', KEYS[s.leases], unpack(gone))
    end
end
return 1
