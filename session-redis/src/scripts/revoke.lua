-- revoke: mark one live session revoked; the record stays until its TTL.
-- KEYS[1] the session's key; ARGV[1] now, ARGV[2] the revocation stamp (see mark_revoked)
-- Reply: 1 if revoked, 0 if missing, revoked or expired at `now`, -1 if damaged.
local function revoke(KEYS, ARGV)
  if not valid_stamp(ARGV[2]) then
    return redis.error_reply('revoke: the revocation stamp is not ' .. STAMP_LEN .. ' bytes')
  end
  local state = record_state(read_value(KEYS[1]), tonumber(ARGV[1]))
  if state == 'damaged' then
    return -1
  end
  if state ~= 'live' then
    return 0
  end
  mark_revoked(KEYS[1], ARGV[2])
  return 1
end
