-- Helpers shared by every script (prepended to each one).
-- Instants are microseconds since the Unix epoch, passed and stored as decimal text. They are
-- compared as Lua numbers (exact below 2^53) and never formatted back by Lua: a script writes
-- the text it was given or read.

-- Key TTLs never go below this (milliseconds), so a record written already expired under the
-- caller's clock still lives long enough to be read back once.
local TTL_FLOOR_MS = 1000

-- true when a record (fields i, a, v as HMGET returns them) is live at `now`.
local function is_live(idle, absolute, revoked, now)
  if not idle or not absolute or revoked then
    return false
  end
  return now < math.min(tonumber(idle), tonumber(absolute))
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

