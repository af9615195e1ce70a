#!lua
--[[ history_append: append messages, refresh TTLs and the session's last activity.
KEYS[1]  {ns}:{N}:hist:{session}   list of JSON messages
KEYS[2]  {ns}:{N}:sessions         zset: session -> last activity (server ms). NO TTL on
                                    purpose: volatile-* policies never evict it, so it can
                                    witness the eviction of a history; stale members are
                                    pruned here instead.
ARGV[1]  session id
ARGV[2]  session ttl, ms
ARGV[3]  max messages kept (0 = unlimited)
ARGV[4..] messages (JSON)
Returns the length of the history.
]]
local now = now_ms()
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
local keep = tonumber(ARGV[3])
if keep > 0 and n > keep then
  redis.call('LTRIM', KEYS[1], -keep, -1)
  n = keep
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[2])))
return n
