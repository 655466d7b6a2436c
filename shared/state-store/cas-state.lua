--[[
  cas-state.lua: write one entity's state if nobody changed it since it was read, either in full
  or as a delta record appended to the stored state.

  KEYS[1]  the entity's state hash, hash-tagged on the entity: <prefix>:{<view>:<entity>}
  ARGV[1]  version read with the state (0 = the key did not exist)
  ARGV[2]  bytes: the full serialized state (engine codec), or one delta record (engine delta.ts)
  ARGV[3]  TTL in milliseconds (the view's ttl: longest window + lateness)
  ARGV[4]  first version of a new key: a random integer in [1, 1e12]
  ARGV[5]  'full' (replace s, drop d) or 'append' (append ARGV[2] to d; needs an existing key)

  Hash fields: v = version (integer, +1 per write), s = state bytes, d = delta records applied
  after s (absent when none). A reader's state is s with the records of d replayed in order.
  Returns the new version (> 0), or -1 when the stored version differs from ARGV[1]
  (another writer got there first: reload, re-apply, try again).

  A new key starts at a random version rather than 1 so that a key deleted (or expired) and written
  again does not repeat the versions a process may still have cached with the old state. Versions
  stay below 1e14, which Lua turns into a string without losing digits.
]]
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if current ~= tonumber(ARGV[1]) then
  return -1
end
local nextVersion = current + 1
if current == 0 then
  if ARGV[5] == 'append' then
    return redis.error_reply('ERR cas-state: append to a missing state ' .. KEYS[1])
  end
  nextVersion = tonumber(ARGV[4])
end
if ARGV[5] == 'append' then
  local delta = redis.call('HGET', KEYS[1], 'd') or ''
  redis.call('HSET', KEYS[1], 'v', nextVersion, 'd', delta .. ARGV[2])
else
  redis.call('HSET', KEYS[1], 'v', nextVersion, 's', ARGV[2])
  redis.call('HDEL', KEYS[1], 'd')
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return nextVersion
