-- rotate: compare-and-swap of the token hash on a live session.
-- KEYS[1] the session's key
-- ARGV[1] now, ARGV[2] presented hash, ARGV[3] next hash (32 bytes), ARGV[4] the new idle expiry,
-- ARGV[5] the new device fields ('' to keep the stored ones): the tail flags byte with only the
-- device bits, then the fields (see codec.rs, encode_device)
-- Reply: {'missing'} | {'damaged'} | {'rotated', record} | {'rejected', record}
-- (the record as it stands after the call, see codec.rs)
-- The value and its TTL are written with one SET.
local function rotate(KEYS, ARGV)
  if #ARGV[3] ~= 32 then
    return redis.error_reply('rotate: the next token hash is not 32 bytes')
  end
  local v = read_value(KEYS[1])
  local now = tonumber(ARGV[1])
  local state, absolute = record_state(v, now)
  if state == 'gone' then
    return {'missing'}
  end
  if state == 'damaged' then
    return {'damaged'}
  end
  local current = string.sub(v, AT_TOKEN, AT_TOKEN + 31)
  if state == 'live' and current == ARGV[2] then
    local idle = math.min(tonumber(ARGV[4]), absolute)
    local generation = struct.unpack('<I8', v, AT_GENERATION) + 1
    if generation >= MAX_EXACT then
      return redis.error_reply('rotate: the generation cannot grow further; nothing was written')
    end
    -- Idle expiry, last active, token, flags, previous token, rotated at, generation: contiguous.
    local patch = struct.pack('<i8i8', idle, now) .. ARGV[3] .. ROTATED_FLAGS .. current
      .. struct.pack('<i8I8', now, generation)
    local rotated = string.sub(v, 1, AT_IDLE - 1) .. patch .. string.sub(v, AT_IDLE + #patch)
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
