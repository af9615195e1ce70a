#!lua
--[[ prefs_set: set preferences and refresh their TTL atomically.
KEYS[1]  {ns}:{N}:prefs:{user}   hash of JSON values
ARGV[1]  ttl, ms
ARGV[2..] field, value pairs
Returns 1.
]]
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
