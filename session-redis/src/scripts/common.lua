-- Helpers shared by every script (prepended to each one).
-- A record is one string (see codec.rs for the layout): a fixed header the scripts read with
-- GETRANGE and patch with SETRANGE, then a tail they never read. Integers are little-endian and
-- handled with the `struct` library; instants are microseconds since the Unix epoch, as Lua
-- numbers (exact below 2^53). Instants passed as arguments are decimal text.

-- The layout, as 1-based Lua string positions (codec.rs checks these against its own).
local VERSION = 1
local AT_IDLE = 2
local AT_TOKEN = 18
local AT_GENERATION = 91
local AT_ABSOLUTE = 99
local AT_REASON = 107
local HEADER_LEN = 123
-- Integers a Lua number holds exactly are below this (2^53).
local MAX_EXACT = 9007199254740992
-- The rotation flags a rotation sets: a previous token hash and a rotation instant.
local ROTATED_FLAGS = '\3'

-- The tail flag bits (after the user id): user agent, IP address, device name, app data.
local TAIL_USER_AGENT = 1
local TAIL_IP = 2
local TAIL_DEVICE_NAME = 4
local TAIL_DATA = 8

-- Key TTLs never go below this (milliseconds), so a record written already expired under the
-- caller's clock still lives long enough to be read back once.
local TTL_FLOOR_MS = 1000

-- Normalizes a read: the value, '' when there is no key, false when the key is not a string.
local function as_read(value)
  if type(value) == 'table' then
    return false
  end
  return value or ''
end

-- The first HEADER_LEN bytes of the record at `key` (see as_read).
local function read_header(key)
  return as_read(redis.pcall('GETRANGE', key, 0, HEADER_LEN - 1))
end

-- The whole record at `key` (see as_read).
local function read_value(key)
  return as_read(redis.pcall('GET', key))
end

-- The state of the record at `key` at `now`, from `v`, its header or whole value as read by
-- read_header or read_value, and the record's absolute expiry:
--   'gone'     no such key (dropped at its TTL, or deleted)
--   'damaged'  the key holds something else than a record of this format
--   'revoked', 'expired' (at `now`) or 'live'
local function record_state(key, v, now)
  if v == '' and redis.call('EXISTS', key) == 0 then
    return 'gone'
  end
  if not v or #v < HEADER_LEN or string.byte(v, 1) ~= VERSION then
    return 'damaged'
  end
  local idle = struct.unpack('<i8', v, AT_IDLE)
  local absolute = struct.unpack('<i8', v, AT_ABSOLUTE)
  if string.byte(v, AT_REASON) ~= 0 then
    return 'revoked', absolute
  end
  if now < math.min(idle, absolute) then
    return 'live', absolute
  end
  return 'expired', absolute
end

-- Marks the record at `key` revoked at `now` for the reason whose one-byte code is `code`.
local function mark_revoked(key, code, now)
  redis.call('SETRANGE', key, AT_REASON - 1, code .. struct.pack('<i8', now))
end

-- The state of the record of `member`, an entry of the user's index `index` (`prefix` .. member
-- is its key), and that key. Drops the entry when its record can never be live again: revoked,
-- or gone. A record that is merely expired at this caller's `now` stays indexed: calls may
-- arrive out of order, and one whose `now` is a little earlier may still touch or rotate it.
-- Its key's TTL, set from its expiry, removes it soon; the next walk then drops the entry.
local function member_state(index, prefix, member, now)
  local key = prefix .. member
  local state = record_state(key, read_header(key), now)
  if state == 'gone' or state == 'revoked' then
    redis.call('ZREM', index, member)
  end
  return state, key
end

-- A key TTL in milliseconds, as integer text, for a record expiring at `expiry`.
local function ttl_ms(expiry, now)
  local ms = math.ceil((expiry - now) / 1000)
  if ms < TTL_FLOOR_MS then
    ms = TTL_FLOOR_MS
  end
  return string.format('%d', ms)
end

-- Where the device fields of the whole record `v` lie: the position of its tail flags byte,
-- that byte, and the position right after the device fields (where the app data, if any,
-- starts). nil when the record is cut short or names an unknown IP address family.
local function device_span(v)
  if #v < HEADER_LEN + 3 then
    return nil
  end
  local at = HEADER_LEN + 3 + struct.unpack('<I2', v, HEADER_LEN + 1)
  local flags = string.byte(v, at)
  if not flags then
    return nil
  end
  local pos = at + 1
  if bit.band(flags, TAIL_USER_AGENT) ~= 0 then
    if #v < pos + 3 then
      return nil
    end
    pos = pos + 4 + struct.unpack('<I4', v, pos)
  end
  if bit.band(flags, TAIL_IP) ~= 0 then
    local family = string.byte(v, pos)
    if family == 4 then
      pos = pos + 5
    elseif family == 6 then
      pos = pos + 17
    else
      return nil
    end
  end
  if bit.band(flags, TAIL_DEVICE_NAME) ~= 0 then
    if #v < pos + 3 then
      return nil
    end
    pos = pos + 4 + struct.unpack('<I4', v, pos)
  end
  if pos > #v + 1 then
    return nil
  end
  return at, flags, pos
end
