-- touch: move a live session's idle expiry (capped at its absolute expiry).
-- KEYS[1] the session's key; ARGV[1] now, ARGV[2] the new idle expiry
-- Reply: 1 if touched, 0 if missing, revoked or expired at `now`, -1 if damaged.
local f = redis.call('HMGET', KEYS[1], 'i', 'a', 'v')
local now = tonumber(ARGV[1])
local state = record_state(KEYS[1], f, now)
if state == 'damaged' then
  return -1
end
if state ~= 'live' then
  return 0
end
local idle = earlier(ARGV[2], f[2])
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'i', idle)
redis.call('PEXPIRE', KEYS[1], ttl_ms(idle, now))
return 1
