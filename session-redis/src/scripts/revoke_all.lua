-- revoke_all: revoke every live session in the user's index but one; drops revoked and gone
-- entries. A damaged record (see record_state) is left alone: no operation can use it.
-- KEYS[1] the user's index
-- ARGV[1] now, ARGV[2] the id to keep ('' for none), ARGV[3] the revocation stamp (see mark_revoked)
-- ARGV[4] session key prefix of the user's slot
-- Reply: how many sessions were revoked.
local function revoke_all(KEYS, ARGV)
  if not valid_stamp(ARGV[3]) then
    return redis.error_reply('revoke_all: the revocation stamp is not ' .. STAMP_LEN .. ' bytes')
  end
  local now = tonumber(ARGV[1])
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  local states = walk_index(KEYS[1], ARGV[4], members, now)
  local revoked = {}
  for n, member in ipairs(members) do
    if states[n] == 'live' and member ~= ARGV[2] then
      mark_revoked(ARGV[4] .. member, ARGV[3])
      revoked[#revoked + 1] = member
    end
  end
  remove_members(KEYS[1], revoked)
  return #revoked
end
