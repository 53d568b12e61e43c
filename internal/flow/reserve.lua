-- Reserve the next slot of an endpoint's rate limit (GCRA), on Redis's clock.
-- KEYS[1]  the endpoint's rate state, a hash:
--          tat    the theoretical arrival time, µs: the slot after the last reserved
--          pause  no slot starts before this, µs (PauseUntil)
-- ARGV[1]  the emission interval, µs (1/rate, rounded up)
-- ARGV[2]  the burst: how many slots may start at once
-- ARGV[3]  how many slots to reserve, one after the other
-- Returns  {now, start1, start2, ...}: Redis's time and the reserved slots, µs.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = (tonumber(ARGV[2]) - 1) * interval
local st = redis.call('HMGET', KEYS[1], 'tat', 'pause')
-- A pause moves the clock: the limit runs as if it were `pause` now.
local from = math.max(now, tonumber(st[2]) or 0)
local tat = math.max(tonumber(st[1]) or 0, from)
local out = {now}
for i = 1, tonumber(ARGV[3]) do
    out[i + 1] = math.max(from, tat - tolerance)
    tat = tat + interval
end
-- %.0f: Redis formats a bare Lua number with 14 digits, too few for µs.
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
-- Once tat is past, the state means the same as no state: let it go.
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(tat / 1000)))
return out
