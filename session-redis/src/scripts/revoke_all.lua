-- revoke_all: revoke every live session in the user's index but one; prune dead members.
-- KEYS[1] the user's index
-- ARGV[1] now, ARGV[2] the id to keep ('' for none), ARGV[3] reason code
-- ARGV[4] session key prefix of the user's slot
-- Reply: how many sessions were revoked.
local now = tonumber(ARGV[1])
local count = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[4] .. member
  local f = redis.call('HMGET', key, 'i', 'a', 'v')
  if is_live(f[1], f[2], f[3], now) then
    if member ~= ARGV[2] then
      redis.call('HSET', key, 'v', ARGV[1], 'w', ARGV[3])
      redis.call('ZREM', KEYS[1], member)
      count = count + 1
    end
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return count
