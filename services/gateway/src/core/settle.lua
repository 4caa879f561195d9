-- Settles a reservation to the call's real cost. The real cost stays held until `until` (by
-- then the ledger has counted it in the mirror's `spent`); 0 held (or until 0) frees it at once.
--
-- KEYS: tpm current window (or a dummy when there is no tpm limit), then for each budget its
--       holds hash and its leases zset.
-- ARGV: reservation id, real cost, token correction (real - estimated), until (ms), key ttl (ms),
--       tpm limited (1/0).
local reservation, cost, correction = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local hold_until, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[6] == '1' and correction ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('INCRBY', KEYS[1], correction)
end
for i = 1, (#KEYS - 1) / 2 do
    local holds, leases = KEYS[2 * i], KEYS[2 * i + 1]
    local old = tonumber(redis.call('HGET', holds, reservation))
    if old then
        if hold_until > 0 and cost > 0 then
            redis.call('HSET', holds, reservation, cost)
            redis.call('HINCRBY', holds, 'total', cost - old)
            redis.call('ZADD', leases, hold_until, reservation)
            redis.call('PEXPIRE', holds, ttl)
            redis.call('PEXPIRE', leases, ttl)
        else
            redis.call('HDEL', holds, reservation)
            redis.call('HINCRBY', holds, 'total', -old)
            redis.call('ZREM', leases, reservation)
        end
    end
end
return 1
