-- rotate: compare-and-swap of the token hash on a live session.
-- KEYS[1] the session's key
-- ARGV[1] now, ARGV[2] presented hash, ARGV[3] next hash (32 bytes), ARGV[4] the new idle expiry
-- Reply: {'missing'} | {'damaged'} | {'rotated', record} | {'rejected', record}
-- (the record as it stands after the call, see codec.rs)
if #ARGV[3] ~= 32 then
  return redis.error_reply('rotate: the next token hash is not 32 bytes')
end
local v = read_value(KEYS[1])
local now = tonumber(ARGV[1])
local state, absolute = record_state(KEYS[1], v, now)
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
  redis.call('SETRANGE', KEYS[1], AT_IDLE - 1, patch)
  redis.call('PEXPIRE', KEYS[1], ttl_ms(idle, now))
  return {'rotated', string.sub(v, 1, AT_IDLE - 1) .. patch .. string.sub(v, AT_IDLE + #patch)}
end
return {'rejected', v}
