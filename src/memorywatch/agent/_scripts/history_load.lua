#!lua flags=no-writes
--[[ history_load: read a history and tell a new session from a lost one (read-only, so it
still answers when Redis is out of memory).
KEYS[1]  {ns}:{N}:hist:{session}
KEYS[2]  {ns}:{N}:sessions
ARGV[1]  session id
ARGV[2]  session ttl, ms
Returns {code, messages}: code 1 = found, 0 = new (or expired with its index entry),
-1 = MISS: the index says the session was active within its ttl but the history is gone.
]]
local msgs = redis.call('LRANGE', KEYS[1], 0, -1)
if #msgs > 0 then return {1, msgs} end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then return {0, msgs} end
local now = now_ms()
if tonumber(score) <= now - tonumber(ARGV[2]) then return {0, msgs} end
return {-1, msgs}
