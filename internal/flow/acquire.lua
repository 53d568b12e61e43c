-- Take one of an endpoint's in-flight places, on Redis's clock.
-- KEYS[1]  the holders, a sorted set: holder -> end of its lease, µs
-- KEYS[2]  the holders' statistics, a hash:
--          lease  the lease last asked for, µs
--          hold   the average time a place was held, µs (set by release.lua)
-- ARGV[1]  the most holders at once
-- ARGV[2]  the lease, µs: a holder that neither releases nor acquires again
--          loses its place when the lease ends
-- ARGV[3]  the holder; acquiring again as the same holder renews its lease
-- ARGV[4]  how long the statistics outlive their last use, ms
-- Returns  {1, lease end} when the place is held, else {0, when to try again}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < limit then
  local ends = now + lease
  redis.call('ZADD', KEYS[1], string.format('%.0f', ends), ARGV[3])
  -- The set lives as long as its longest lease.
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(tonumber(last[2]) / 1000)))
  redis.call('HSET', KEYS[2], 'lease', string.format('%.0f', lease))
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {1, ends}
end
-- Refused. A place is sure to be free when the first lease ends; it is
-- likely free sooner, after the average hold: offer the earlier, but not
-- sooner than a millisecond from now.
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local retry = tonumber(first[2])
local hold = tonumber(redis.call('HGET', KEYS[2], 'hold'))
if hold then
  retry = math.min(retry, now + hold)
end
return {0, math.max(retry, now + 1000)}
