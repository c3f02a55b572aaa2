-- revoke: mark one live session revoked; the record stays until its TTL.
-- KEYS[1] the session's key; ARGV[1] now, ARGV[2] reason code
-- Reply: 1 if revoked, 0 if missing, revoked or expired at `now`.
local f = redis.call('HMGET', KEYS[1], 'i', 'a', 'v')
if not is_live(f[1], f[2], f[3], tonumber(ARGV[1])) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'w', ARGV[2])
return 1
