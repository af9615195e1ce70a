#!lua
--[[ tool_extend: push the in-progress deadline of a claim that is still ours (watchdog).
KEYS[1]  {ns}:{N}:tool:{idempotency_key}
ARGV[1]  owner token of the claim
ARGV[2]  new deadline, ms from now
Returns 1 when extended, 0 when the claim is no longer ours or no longer in progress.
]]
local rec = redis.call('HMGET', KEYS[1], 'state', 'owner')
if rec[1] ~= 'in_progress' or rec[2] ~= ARGV[1] then return 0 end
local now = now_ms()
redis.call('HSET', KEYS[1], 'deadline_ms', now + tonumber(ARGV[2]))
return 1
