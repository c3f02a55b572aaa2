-- list: the user's live sessions, newest first, at most ARGV[2]; drops revoked and gone entries.
-- KEYS[1] the user's index
-- ARGV[1] now, ARGV[2] limit, ARGV[3] session key prefix of the user's slot
-- Reply: {'ok', id, record, id, record, ...} | {'damaged', id}
local function list(KEYS, ARGV)
  local now = tonumber(ARGV[1])
  local limit = tonumber(ARGV[2])
  local members = redis.call('ZREVRANGE', KEYS[1], 0, -1)
  local states, values = walk_index(KEYS[1], ARGV[3], members, now)
  local out = {'ok'}
  local found = 0
  for n, member in ipairs(members) do
    if states[n] == 'damaged' then
      return {'damaged', member}
    end
    if states[n] == 'live' and found < limit then
      found = found + 1
      out[#out + 1] = member
      out[#out + 1] = values[n]
    end
  end
  return out
end
