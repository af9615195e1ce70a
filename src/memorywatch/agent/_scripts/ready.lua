#!lua
--[[ ready: the readiness probe. A script declared as writing is refused up front by a server
that is loading, read-only or out of memory, so one call proves all three.
KEYS[1]  {ns}:{N}:probe:{instance}
ARGV[1]  ttl, ms
Returns 1.
]]
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
