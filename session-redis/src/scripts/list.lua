-- list: the user's live sessions, newest first, at most ARGV[2]; drops revoked and gone entries.
-- KEYS[1] the user's index
-- ARGV[1] now, ARGV[2] limit, ARGV[3] session key prefix of the user's slot
-- Reply: {'ok', id, record, id, record, ...} | {'damaged', id}
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local out = {'ok'}
local found = 0
for _, member in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local state, key = member_state(KEYS[1], ARGV[3], member, now)
  if state == 'damaged' then
    return {'damaged', member}
  end
  if state == 'live' and found < limit then
    found = found + 1
    out[#out + 1] = member
    out[#out + 1] = redis.call('GET', key)
  end
end
return out
