-- rotate: compare-and-swap of the token hash on a live session.
-- KEYS[1] the session's key
-- ARGV[1] now, ARGV[2] presented hash, ARGV[3] next hash (both 32 bytes), ARGV[4] the new idle
-- expiry, ARGV[5] the new device fields ('' to keep the stored ones): the tail flags byte with
-- only the device bits, then the fields (see codec.rs, encode_device)
-- Reply: {'missing'} | {'damaged'} | {'rotated', record} | {'rejected', record}
-- (the record as it stands after the call, see codec.rs)
-- The value and its TTL are written with one SET.
local function rotate(KEYS, ARGV)
  local presented, next_hash = ARGV[2], ARGV[3]
  if #presented ~= 32 or #next_hash ~= 32 then
    return redis.error_reply('rotate: a token hash is not 32 bytes')
  end
  local v = read_value(KEYS[1])
  local now = tonumber(ARGV[1])
  local state, absolute, generation = record_state(v, now)
  if state == 'gone' then
    return {'missing'}
  end
  if state == 'damaged' then
    return {'damaged'}
  end
  -- A plain search from the token's position starts there only if the token is the presented
  -- hash (no substring is made to compare).
  if state == 'live' and string.find(v, presented, AT_TOKEN, true) == AT_TOKEN then
    local idle = math.min(tonumber(ARGV[4]), absolute)
    generation = generation + 1
    if generation >= MAX_EXACT then
      return redis.error_reply('rotate: the generation cannot grow further; nothing was written')
    end
    -- Version, idle expiry, last active, token, flags, previous token, rotated at, generation:
    -- the header up to the absolute expiry, packed in one go; the rest is kept.
    local rotated = struct.pack('<Bi8i8c0c0c0i8I8', VERSION, idle, now, next_hash, ROTATED_FLAGS,
      presented, now, generation) .. string.sub(v, AT_ABSOLUTE)
    if ARGV[5] == '' then
      redis.call('SET', KEYS[1], rotated, 'PX', ttl_ms(idle, now))
      return {'rotated', rotated}
    end
    -- A new device: splice its fields in place of the stored ones, keep the app data, and write
    -- the whole value (its length may change) with its TTL.
    local at, flags, after = device_span(rotated)
    if not at then
      return {'damaged'}
    end
    local tail = bit.bor(bit.band(flags, TAIL_DATA), string.byte(ARGV[5], 1))
    rotated = string.sub(rotated, 1, at - 1) .. string.char(tail) .. string.sub(ARGV[5], 2)
      .. string.sub(rotated, after)
    redis.call('SET', KEYS[1], rotated, 'PX', ttl_ms(idle, now))
    return {'rotated', rotated}
  end
  return {'rejected', v}
end
