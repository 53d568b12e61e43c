-- Pause an endpoint's rate limit: no slot reserved from now on starts before ARGV[1].
-- KEYS[1]  the endpoint's rate state (see reserve.lua)
-- ARGV[1]  until, µs; a pause never shortens one already set
-- Returns  1 if the pause was stored, 0 if until is already past.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untilUs = tonumber(ARGV[1])
if untilUs <= now then
  return 0
end
local st = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local pause = math.max(tonumber(st[2]) or 0, untilUs)
redis.call('HSET', KEYS[1], 'pause', string.format('%.0f', pause))
local last = math.max(tonumber(st[1]) or 0, pause)
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(last / 1000)))
return 1
