-- revoke_all: revoke every live session in the user's index but one; drops revoked and gone
-- entries. A damaged record (see record_state) is left alone: no operation can use it.
-- KEYS[1] the user's index
-- ARGV[1] now, ARGV[2] the id to keep ('' for none), ARGV[3] the reason's one-byte code
-- ARGV[4] session key prefix of the user's slot
-- Reply: how many sessions were revoked.
local now = tonumber(ARGV[1])
local count = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local state, key = member_state(KEYS[1], ARGV[4], member, now)
  if state == 'live' and member ~= ARGV[2] then
    mark_revoked(key, ARGV[3], now)
    redis.call('ZREM', KEYS[1], member)
    count = count + 1
  end
end
return count
