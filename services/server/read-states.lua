--[[
  read-states.lua: the serialized states of many entities in one call (a batch lookup).

  KEYS[1..n]  the entities' state hashes, <prefix>:{<view>:<entity>} (see shared/state-store/cas-state.lua)
  ARGV        none

  Returns 2n replies, two per key in KEYS order: the hash fields s (engine codec bytes) and d
  (delta records appended after s, shared/engine/delta.ts), each nil (Lua false) where absent.

  Read-only. One call instead of n HGET commands because the client's per-command cost, not
  Redis', dominated batch lookups (docs/server.md). The keys are in different hash slots (each is
  hash-tagged on its entity), so this runs against one Redis server, not Redis Cluster.
]]
local out = {}
for i = 1, #KEYS do
  out[2 * i - 1] = redis.call('HGET', KEYS[i], 's')
  out[2 * i] = redis.call('HGET', KEYS[i], 'd')
end
return out
