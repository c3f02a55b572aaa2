-- create: apply the per-user cap, store the record, index it.
-- KEYS[1] the new session's key, KEYS[2] the user's index
-- ARGV[1] created_at (the `now` of the cap), ARGV[2] cap (0: none), ARGV[3] 'evict' | 'reject'
-- ARGV[4] session key prefix of the user's slot, ARGV[5] the session id
-- ARGV[6] the record's expiry, ARGV[7] its absolute expiry (the index's TTL floor)
-- ARGV[8] the eviction's revocation stamp (see mark_revoked), ARGV[9] the record (see codec.rs)
-- Reply: {'exists'} | {'limit'} | {'created', evicted ids oldest first...}
--
-- With a cap, the whole index is read: the live sessions are counted exactly. Without one,
-- nothing is counted and only the PRUNE_BATCH oldest entries are inspected (and dropped if
-- revoked or gone), so a login costs the same however many sessions the user holds.
-- Unless a cap may refuse the login, the record is written first, with SET NX, which is also
-- the check that the id is new.

-- Index entries a login without a cap inspects.
local PRUNE_BATCH = 64

local function create(KEYS, ARGV)
  if not valid_stamp(ARGV[8]) then
    return redis.error_reply('create: the revocation stamp is not ' .. STAMP_LEN .. ' bytes')
  end
  local now = tonumber(ARGV[1])
  local cap = tonumber(ARGV[2])
  local reject = cap > 0 and ARGV[3] == 'reject'
  local ttl = ttl_ms(tonumber(ARGV[6]), now)
  if reject then
    if redis.call('EXISTS', KEYS[1]) == 1 then
      return {'exists'}
    end
  elseif not redis.call('SET', KEYS[1], ARGV[9], 'NX', 'PX', ttl) then
    return {'exists'}
  end
  local reply = {'created'}
  local members
  if cap > 0 then
    members = redis.call('ZRANGE', KEYS[2], 0, -1)
  else
    members = redis.call('ZRANGE', KEYS[2], 0, PRUNE_BATCH - 1)
  end
  local states, _, removed = walk_index(KEYS[2], ARGV[4], members, now)
  if cap > 0 then
    local live = {}
    for n, member in ipairs(members) do
      if states[n] == 'live' then
        live[#live + 1] = member
      end
    end
    if #live >= cap then
      if reject then
        return {'limit'}
      end
      local evicted = {}
      for n = 1, #live - cap + 1 do
        mark_revoked(ARGV[4] .. live[n], ARGV[8])
        evicted[n] = live[n]
        reply[#reply + 1] = live[n]
      end
      remove_members(KEYS[2], evicted)
      removed = removed + #evicted
    end
  end
  if reject then
    redis.call('SET', KEYS[1], ARGV[9], 'PX', ttl)
  end
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
  -- The index keeps at least the new record's absolute expiry. An index this call emptied (or
  -- found empty) was deleted, so the ZADD made a new one without a TTL: set it at once.
  -- Otherwise the index has one (every create sets it) and only a longer one replaces it.
  local index_ttl = ttl_ms(tonumber(ARGV[7]), now)
  local emptied = removed == #members and (cap > 0 or #members < PRUNE_BATCH)
  if emptied or redis.call('PTTL', KEYS[2]) < tonumber(index_ttl) then
    redis.call('PEXPIRE', KEYS[2], index_ttl)
  end
  return reply
end
