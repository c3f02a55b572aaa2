-- create: count the user's live sessions, evict or refuse at the cap, store the record.
-- KEYS[1] the new session's key, KEYS[2] the user's index
-- ARGV[1] created_at (the `now` of the cap), ARGV[2] cap (0: none), ARGV[3] 'evict' | 'reject'
-- ARGV[4] session key prefix of the user's slot, ARGV[5] the session id
-- ARGV[6] the record's TTL (ms), ARGV[7] the index's TTL floor (ms), ARGV[8] eviction reason
-- ARGV[9..] the record's field/value pairs
-- Reply: {'exists'} | {'limit'} | {'created', evicted ids oldest first...}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local live = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local f = redis.call('HMGET', ARGV[4] .. member, 'i', 'a', 'v')
  if is_live(f[1], f[2], f[3], now) then
    live[#live + 1] = member
  else
    redis.call('ZREM', KEYS[2], member)
  end
end
local reply = {'created'}
if cap > 0 and #live >= cap then
  if ARGV[3] == 'reject' then
    return {'limit'}
  end
  for n = 1, #live - cap + 1 do
    local member = live[n]
    redis.call('HSET', ARGV[4] .. member, 'v', ARGV[1], 'w', ARGV[8])
    redis.call('ZREM', KEYS[2], member)
    reply[#reply + 1] = member
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[7]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
return reply
