-- create: apply the per-user cap, store the record, index it.
-- KEYS[1] the new session's key, KEYS[2] the user's index
-- ARGV[1] created_at (the `now` of the cap), ARGV[2] cap (0: none), ARGV[3] 'evict' | 'reject'
-- ARGV[4] session key prefix of the user's slot, ARGV[5] the session id
-- ARGV[6] the record's TTL (ms), ARGV[7] the index's TTL floor (ms)
-- ARGV[8] the eviction reason's one-byte code, ARGV[9] the record (see codec.rs)
-- Reply: {'exists'} | {'limit'} | {'created', evicted ids oldest first...}
--
-- With a cap, the whole index is read: the live sessions are counted exactly. Without one,
-- nothing is counted and only the PRUNE_BATCH oldest entries are inspected (and dropped if
-- revoked or gone), so a login costs the same however many sessions the user holds.

-- Index entries a login without a cap inspects.
local PRUNE_BATCH = 64

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local reply = {'created'}
if cap > 0 then
  local live = {}
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if member_state(KEYS[2], ARGV[4], member, now) == 'live' then
      live[#live + 1] = member
    end
  end
  if #live >= cap then
    if ARGV[3] == 'reject' then
      return {'limit'}
    end
    for n = 1, #live - cap + 1 do
      local member = live[n]
      mark_revoked(ARGV[4] .. member, ARGV[8], now)
      redis.call('ZREM', KEYS[2], member)
      reply[#reply + 1] = member
    end
  end
else
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, PRUNE_BATCH - 1)) do
    member_state(KEYS[2], ARGV[4], member, now)
  end
end
redis.call('SET', KEYS[1], ARGV[9], 'PX', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[7]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
return reply
