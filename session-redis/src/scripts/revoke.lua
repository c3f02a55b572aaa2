-- revoke: mark one live session revoked; the record stays until its TTL.
-- KEYS[1] the session's key; ARGV[1] now, ARGV[2] reason code
-- Reply: 1 if revoked, 0 if missing, revoked or expired at `now`, -1 if damaged.
local f = redis.call('HMGET', KEYS[1], 'i', 'a', 'v')
local state = record_state(KEYS[1], f, tonumber(ARGV[1]))
if state == 'damaged' then
  return -1
end
if state ~= 'live' then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'w', ARGV[2])
return 1
