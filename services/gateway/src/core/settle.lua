-- Settles a reservation to the call's real cost. The real cost stays held until `until` (by
-- then the ledger has counted it in the mirror's `spent`); 0 held (or until 0) frees it at once.
-- Settled costs are held per second (`s:<second>`, the second `until` falls in, rounded up),
-- so a budget's hash and zset hold a few dozen fields, not one per call of the last `until`.
-- (The keys' expiry was set by the decision and outlives a hold settled within the
-- reservation's lease; see policy.rs.)
--
-- KEYS: tpm current window (or a dummy when there is no tpm limit), then for each budget its
--       holds hash and its leases zset.
-- ARGV: reservation id, real cost, token correction (real - estimated), until (ms),
--       tpm limited (1/0).
local reservation, cost, correction = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local hold_until = tonumber(ARGV[4])
if ARGV[5] == '1' and correction ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('INCRBY', KEYS[1], correction)
end
local second = math.ceil(hold_until / 1000)
local bucket = 's:' .. second
for i = 1, (#KEYS - 1) / 2 do
    local holds, leases = KEYS[2 * i], KEYS[2 * i + 1]
    local old = tonumber(redis.call('HGET', holds, reservation))
    if old then
        -- The second is added before the reservation goes: removing a set's last member
        -- deletes the key, and a key created here would have no expiry.
        if hold_until > 0 and cost > 0 then
            redis.call('HINCRBY', holds, bucket, cost)
            redis.call('ZADD', leases, second * 1000, bucket)
            redis.call('HINCRBY', holds, 'total', cost - old)
        else
            redis.call('HINCRBY', holds, 'total', -old)
        end
        redis.call('HDEL', holds, reservation)
        redis.call('ZREM', leases, reservation)
    end
end
return 1
