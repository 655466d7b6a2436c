--[[
  restore-state.lua: puts a snapshot's state back in place of whatever the key holds, in one step,
  so that a reader (the server) never sees the restored state `s` beside the delta records `d` of
  the state it replaces, which it would replay onto it.

  KEYS[1]  the state hash <prefix>:{<view>:<entity>}
  ARGV[1]  a new version (hash field v): a writer holding an older one meets a conflict
  ARGV[2]  the state bytes (field s)
  ARGV[3]  the view's ttl, in milliseconds

  Returns 1.
]]
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
