-- touch: move a live session's idle expiry (capped at its absolute expiry).
-- KEYS[1] the session's key; ARGV[1] now, ARGV[2] the new idle expiry
-- Reply: 1 if touched, 0 if missing, revoked or expired at `now`, -1 if damaged.
local function touch(KEYS, ARGV)
  local now = tonumber(ARGV[1])
  local v = read_value(KEYS[1])
  local state, absolute = record_state(v, now)
  if state == 'damaged' then
    return -1
  end
  if state ~= 'live' then
    return 0
  end
  local idle = math.min(tonumber(ARGV[2]), absolute)
  -- Version, idle expiry and last active lead the record; value and TTL go in one SET.
  redis.call('SET', KEYS[1], struct.pack('<Bi8i8', VERSION, idle, now) .. string.sub(v, AT_TOKEN),
    'PX', ttl_ms(idle, now))
  return 1
end
