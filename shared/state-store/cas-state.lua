--[[
  cas-state.lua: write entities' states, each only if nobody changed it since it was read, either
  in full or as a delta record appended to the stored state.

  KEYS[1..n]  the entities' state hashes, each hash-tagged on its entity: <prefix>:{<view>:<entity>}
              (one key per call on Redis Cluster, where keys of one call must share a slot)
  ARGV[1]     TTL in milliseconds (the view's ttl: by default longest window + its tile + lateness)
  then for the i-th key, ARGV[2 + 4*(i-1)] ..:
    version   read with the state (0 = the key did not exist)
    bytes     the full serialized state (engine codec), or one delta record (engine delta.ts)
    first     first version if the key is new: a random integer in [1, 1e12]
    mode      'full' (replace s, drop d) or 'append' (append bytes to d; needs an existing key)

  Hash fields: v = version (integer, +1 per write), s = state bytes, d = delta records applied
  after s (absent when none). A reader's state is s with the records of d replayed in order.
  Returns one integer per key: the new version (> 0), or -1 when the stored version differs from
  the one given (another writer got there first: reload, re-apply, try again).

  A new key starts at a random version rather than 1 so that a key deleted (or expired) and written
  again does not repeat the versions a process may still have cached with the old state. Versions
  stay below 1e14, which Lua turns into a string without losing digits.
]]
local ttl = ARGV[1]
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local at = 2 + 4 * (i - 1)
  local bytes, mode = ARGV[at + 1], ARGV[at + 3]
  local current = tonumber(redis.call('HGET', key, 'v') or '0')
  if current ~= tonumber(ARGV[at]) then
    out[i] = -1
  elseif current == 0 and mode == 'append' then
    return redis.error_reply('ERR cas-state: append to a missing state ' .. key)
  else
    local nextVersion = current + 1
    if current == 0 then
      nextVersion = tonumber(ARGV[at + 2])
    end
    if mode == 'append' then
      local delta = redis.call('HGET', key, 'd') or ''
      redis.call('HSET', key, 'v', nextVersion, 'd', delta .. bytes)
    else
      redis.call('HSET', key, 'v', nextVersion, 's', bytes)
      redis.call('HDEL', key, 'd')
    end
    redis.call('PEXPIRE', key, ttl)
    out[i] = nextVersion
  end
end
return out
