-- Helpers shared by every script (prepended to each one).
-- Instants are microseconds since the Unix epoch, passed and stored as decimal text. They are
-- compared as Lua numbers (exact below 2^53) and never formatted back by Lua: a script writes
-- the text it was given or read.

-- Key TTLs never go below this (milliseconds), so a record written already expired under the
-- caller's clock still lives long enough to be read back once.
local TTL_FLOOR_MS = 1000

-- The state of the record at `key` at `now`, from its fields i, a, v (`f`, as HMGET returns
-- them: false for a missing field):
--   'gone'     no such key (dropped at its TTL, or deleted)
--   'damaged'  the key exists but its idle or absolute expiry is missing or not a number
--   'revoked', 'expired' (at `now`) or 'live'
local function record_state(key, f, now)
  local idle, absolute = tonumber(f[1]), tonumber(f[2])
  if not idle or not absolute then
    if not f[1] and not f[2] and not f[3] and redis.call('EXISTS', key) == 0 then
      return 'gone'
    end
    return 'damaged'
  end
  if f[3] then
    return 'revoked'
  end
  if now < math.min(idle, absolute) then
    return 'live'
  end
  return 'expired'
end

-- The state of the record of `member`, an entry of the user's index `index` (`prefix` .. member
-- is its key), and that key. Drops the entry when its record can never be live again: revoked,
-- or gone. A record that is merely expired at this caller's `now` stays indexed: calls may
-- arrive out of order, and one whose `now` is a little earlier may still touch or rotate it.
-- Its key's TTL, set from its expiry, removes it soon; the next walk then drops the entry.
local function member_state(index, prefix, member, now)
  local key = prefix .. member
  local state = record_state(key, redis.call('HMGET', key, 'i', 'a', 'v'), now)
  if state == 'gone' or state == 'revoked' then
    redis.call('ZREM', index, member)
  end
  return state, key
end

-- The earlier of two instants, as the text of that instant.
local function earlier(a, b)
  if tonumber(a) <= tonumber(b) then
    return a
  end
  return b
end

-- A key TTL in milliseconds, as integer text, for a record expiring at `expiry`.
local function ttl_ms(expiry, now)
  local ms = math.ceil((tonumber(expiry) - now) / 1000)
  if ms < TTL_FLOOR_MS then
    ms = TTL_FLOOR_MS
  end
  return string.format('%d', ms)
end
