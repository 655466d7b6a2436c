--[[
  read-states.lua: the serialized states of many entities in one call (a batch lookup).

  KEYS[1..n]  the entities' state hashes, <prefix>:{<view>:<entity>} (see shared/state-store/cas-state.lua)
  ARGV        none

  Returns n replies in KEYS order: the hash field s (engine codec bytes) of each key, or nil
  (Lua false) where the key does not exist.

  Read-only. One call instead of n HGET commands because the client's per-command cost, not
  Redis', dominated batch lookups (docs/server.md). The keys are in different hash slots (each is
  hash-tagged on its entity), so this runs against one Redis server, not Redis Cluster.
]]
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGET', KEYS[i], 's')
end
return out
