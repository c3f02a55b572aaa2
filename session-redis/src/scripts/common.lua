-- Helpers shared by every operation: the head of the Functions library, and of each script
-- when the server has no Functions (see library.rs).
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
-- A revocation stamp: the reason's one-byte code and the revocation instant, at AT_REASON.
local STAMP_LEN = 9
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

-- What a read found when it found no record: no key at all, or a key that is not a string.
-- (Unique tables, so no value read from Redis can equal them.)
local GONE = {}
local NOT_STRING = {}

-- The whole record at `key`: its value, GONE or NOT_STRING. One GET, never followed by another
-- read: GET tells a missing key (nil) from a key of another type (an error).
local function read_value(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then
    return NOT_STRING
  end
  return value or GONE
end

-- The state of a record at `now`, from `v`, its value as read_value or walk_index read it, and
-- the record's absolute expiry and generation:
--   'gone'     no such key (dropped at its TTL, or deleted)
--   'damaged'  the key holds something else than a record of this format
--   'revoked', 'expired' (at `now`) or 'live'
-- The generation, the absolute expiry and the revocation reason are contiguous: one unpack reads
-- them; the idle expiry is read only when the rest leaves the record live.
local function record_state(v, now)
  if v == GONE then
    return 'gone'
  end
  if v == NOT_STRING or #v < HEADER_LEN or string.byte(v, 1) ~= VERSION then
    return 'damaged'
  end
  local generation, absolute, reason = struct.unpack('<I8i8B', v, AT_GENERATION)
  if reason ~= 0 then
    return 'revoked', absolute, generation
  end
  if now < absolute and now < struct.unpack('<i8', v, AT_IDLE) then
    return 'live', absolute, generation
  end
  return 'expired', absolute, generation
end

-- Marks the record at `key` revoked: `stamp` is its revocation stamp (STAMP_LEN bytes, built by
-- the caller, see codec.rs: the reason's one-byte code, then the instant), written over the
-- reason and the revocation instant. Every operation that takes a stamp checks its length
-- with valid_stamp before it writes anything.
local function mark_revoked(key, stamp)
  redis.call('SETRANGE', key, AT_REASON - 1, stamp)
end

-- Whether `stamp` has the length of a revocation stamp.
local function valid_stamp(stamp)
  return #stamp == STAMP_LEN
end

-- Index entries read (MGET) or removed (ZREM) by one command of walk_index.
local BATCH = 100

-- Removes `members` from the sorted set `index`, BATCH of them per ZREM.
local function remove_members(index, members)
  for first = 1, #members, BATCH do
    redis.call('ZREM', index, unpack(members, first, math.min(first + BATCH - 1, #members)))
  end
end

-- Reads the records of `members`, entries of the user's index `index` (`prefix` .. member is a
-- record's key), with one MGET per BATCH entries, and removes the entries whose record can
-- never be live again: revoked, or gone. A record that is merely expired at this caller's `now`
-- stays indexed: calls may arrive out of order, and one whose `now` is a little earlier may
-- still touch or rotate it. Its key's TTL, set from its expiry, removes it soon; the next walk
-- then drops the entry. MGET answers nil both for a missing key and for a key of another type:
-- only then is the key checked with EXISTS, to tell gone from damaged.
-- Returns each member's state and value (by position in `members`), and how many entries were
-- removed.
local function walk_index(index, prefix, members, now)
  local states, values, dropped = {}, {}, {}
  for first = 1, #members, BATCH do
    local last = math.min(first + BATCH - 1, #members)
    local keys = {}
    for n = first, last do
      keys[#keys + 1] = prefix .. members[n]
    end
    local read = redis.call('MGET', unpack(keys))
    for n = first, last do
      local v = read[n - first + 1]
      if not v then
        if redis.call('EXISTS', keys[n - first + 1]) == 1 then
          v = NOT_STRING
        else
          v = GONE
        end
      end
      local state = record_state(v, now)
      states[n] = state
      values[n] = v
      if state == 'gone' or state == 'revoked' then
        dropped[#dropped + 1] = members[n]
      end
    end
  end
  remove_members(index, dropped)
  return states, values, #dropped
end

-- A key TTL in milliseconds, as integer text, for a record expiring at `expiry` (µs), seen at
-- `now` (µs): rounded up, so the key lives at least until the expiry, and never below
-- TTL_FLOOR_MS. The store's only TTL formula: every write that sets a TTL runs here, since a
-- touch or a rotation caps the new expiry with the record's absolute expiry, which only the
-- server reads.
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
