-- rotate: compare-and-swap of the token hash on a live session.
-- KEYS[1] the session's key
-- ARGV[1] now, ARGV[2] presented hash, ARGV[3] next hash, ARGV[4] the new idle expiry
-- Reply: {'missing'} | {'damaged'} | {'rotated', fields...} | {'rejected', fields...}
-- (fields as HGETALL)
local f = redis.call('HMGET', KEYS[1], 'i', 'a', 'v', 't')
local now = tonumber(ARGV[1])
local state = record_state(KEYS[1], f, now)
if state == 'gone' then
  return {'missing'}
end
if state == 'damaged' then
  return {'damaged'}
end
if state == 'live' and f[4] == ARGV[2] then
  local idle = earlier(ARGV[4], f[2])
  redis.call('HSET', KEYS[1], 'p', f[4], 't', ARGV[3], 'r', ARGV[1], 'l', ARGV[1], 'i', idle)
  redis.call('HINCRBY', KEYS[1], 'g', 1)
  redis.call('PEXPIRE', KEYS[1], ttl_ms(idle, now))
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, 'rotated')
  return reply
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'rejected')
return reply
