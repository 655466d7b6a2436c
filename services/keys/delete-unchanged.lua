--[[
  delete-unchanged.lua: delete an entity's state only if no writer changed it since `tessera keys`
  read it, so a state an ingestor rewrote in the meantime (a current one) is never removed.

  KEYS[1]  the state hash <prefix>:{<view>:<entity>}
  ARGV[1]  its version (hash field v) as read

  Returns 1 when the key was deleted, 0 when its version differs or it is gone.
]]
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
  redis.call('UNLINK', KEYS[1])
  return 1
end
return 0
