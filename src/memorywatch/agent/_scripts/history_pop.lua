#!lua
--[[ history_pop: remove and return a session's newest message; tell an empty session from a
lost one.
KEYS[1]  {ns}:{N}:hist:{session}
KEYS[2]  {ns}:{N}:sessions
ARGV[1]  session id
ARGV[2]  session ttl, ms
Returns {1, message}; {0} when the session is new (or expired with its index entry); {-1} =
MISS, as history_load. Popping the last message also drops the index entry: a history
emptied on purpose is a new session, not a lost one.
]]
local msg = redis.call('RPOP', KEYS[1])
if msg then
  if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
  return {1, msg}
end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then return {0} end
if tonumber(score) <= now_ms() - tonumber(ARGV[2]) then return {0} end
return {-1}
