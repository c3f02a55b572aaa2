-- list: the user's live sessions, newest first, at most ARGV[2]; prune dead members.
-- KEYS[1] the user's index
-- ARGV[1] now, ARGV[2] limit, ARGV[3] session key prefix of the user's slot
-- Reply: { {id, fields...}, ... } (fields as HGETALL)
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local out = {}
for _, member in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[3] .. member
  local f = redis.call('HMGET', key, 'i', 'a', 'v')
  if is_live(f[1], f[2], f[3], now) then
    if #out < limit then
      local record = redis.call('HGETALL', key)
      table.insert(record, 1, member)
      out[#out + 1] = record
    end
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return out
