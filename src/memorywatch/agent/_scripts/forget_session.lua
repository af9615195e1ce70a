#!lua
--[[ forget_session: delete a session's history and its index entry.
KEYS[1]  {ns}:{N}:hist:{session}
KEYS[2]  {ns}:{N}:sessions
ARGV[1]  session id
Returns the number of keys and entries removed.
]]
return redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('DEL', KEYS[1])
