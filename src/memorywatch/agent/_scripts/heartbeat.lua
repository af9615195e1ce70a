#!lua
--[[ heartbeat: publish an instance's state with a short TTL and index it.
KEYS[1]  {ns}:{N}:inst:{instance}   hash, see schema.HEARTBEAT_FIELDS
KEYS[2]  {ns}:{N}:instances         zset: instance -> last heartbeat (server ms)
ARGV[1]  instance id
ARGV[2]  ttl, ms
ARGV[3..] field, value pairs
Returns the server time in ms.
]]
local now = now_ms()
redis.call('HSET', KEYS[1], 'ts_ms', now, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - 4 * tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[2], 4 * tonumber(ARGV[2]))
return now
