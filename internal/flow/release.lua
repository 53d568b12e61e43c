-- Give back an in-flight place and learn how long it was held.
-- KEYS, ARGV[3] and ARGV[4] as in acquire.lua.
-- Returns  1 if the holder held a place, 0 if not (released already, or its lease ended).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ends = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[3]))
if not ends then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[3])
local lease = tonumber(redis.call('HGET', KEYS[2], 'lease'))
if lease then
  -- Held since its last (re)acquire, as far as the last lease asked for tells.
  local held = math.max(0, now - (ends - lease))
  local avg = tonumber(redis.call('HGET', KEYS[2], 'hold'))
  if avg then
    avg = avg + (held - avg) / 8
  else
    avg = held
  end
  redis.call('HSET', KEYS[2], 'hold', string.format('%.0f', avg))
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 1
