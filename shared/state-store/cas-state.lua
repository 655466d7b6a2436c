--[[
  cas-state.lua: replace one entity's serialized state if nobody changed it since it was read.

  KEYS[1]  the entity's state hash, hash-tagged on the entity: <prefix>:{<view>:<entity>}
  ARGV[1]  version read with the state (0 = the key did not exist)
  ARGV[2]  new serialized state (engine codec bytes)
  ARGV[3]  TTL in milliseconds (the view's ttl: longest window + lateness)
  ARGV[4]  first version of a new key: a random integer in [1, 1e12]

  Hash fields: v = version (integer, +1 per write), s = state bytes.
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
  nextVersion = tonumber(ARGV[4])
end
redis.call('HSET', KEYS[1], 'v', nextVersion, 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return nextVersion
