-- revoke: mark one live session revoked; the record stays until its TTL.
-- KEYS[1] the session's key; ARGV[1] now, ARGV[2] the reason's one-byte code
-- Reply: 1 if revoked, 0 if missing, revoked or expired at `now`, -1 if damaged.
local function revoke(KEYS, ARGV)
  local now = tonumber(ARGV[1])
  local state = record_state(read_value(KEYS[1]), now)
  if state == 'damaged' then
    return -1
  end
  if state ~= 'live' then
    return 0
  end
  mark_revoked(KEYS[1], ARGV[2], now)
  return 1
end
