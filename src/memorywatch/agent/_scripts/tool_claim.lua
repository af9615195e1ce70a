#!lua
--[[ tool_claim: claim, replay or reclaim the record of one idempotency key.
KEYS[1]  {ns}:{N}:tool:{idempotency_key}            hash, see schema.TOOL_FIELDS
KEYS[2]  {ns}:{N}:stats:tool_duplicates_suppressed  field = label
KEYS[3]  {ns}:{N}:stats:tool_reclaims               field = label
KEYS[4]  {ns}:{N}:stats:tool_fingerprint_mismatches field = label
KEYS[5]  {ns}:{N}:stats:tool_in_progress_conflicts  field = label
KEYS[6]  {ns}:{N}:tools:inprog                      zset: record key -> claim time (ms)
KEYS[7]  {ns}:{N}:fence                             the shard's fencing counter
KEYS[8]  {ns}:{N}:names:tool                        set: the tools counted by name
ARGV[1]  tool name
ARGV[2]  fingerprint of the arguments
ARGV[3]  owner token "{instance}|{nonce}"
ARGV[4]  instance id
ARGV[5]  in-progress deadline, ms from now
ARGV[6]  retention, ms
ARGV[7]  "1" on the first attempt of this call (an in-progress answer counts as a conflict)
ARGV[8]  name cap
ARGV[9]  the label this shard gave the tool before, or "" (then the registry is asked)
Returns {status, fence, payload, label} (label: the counter field, the tool or "other"):
  {"claimed", fence, ""}               new claim, or a repeated call by the same owner
  {"reclaimed", fence, old_instance}   the previous claim was past its deadline (counted)
  {"completed", fence, result_json}    replay: a suppressed duplicate (counted)
  {"failed", fence, error_json}        replay of a final error (counted as suppressed)
  {"in_progress", fence, remaining_ms} someone else holds a live claim
  {"mismatch", 0, ""}                  same key, other arguments (counted)
]]
local now = now_ms()
local label = ARGV[9]
if label == '' then label = capped(KEYS[8], ARGV[1], ARGV[8]) end
local rec = redis.call('HMGET', KEYS[1], 'state', 'fp', 'owner', 'fence', 'deadline_ms',
  'result', 'instance')
local state = rec[1]

local function claim()
  local fence = redis.call('INCR', KEYS[7])
  redis.call('HSET', KEYS[1], 'state', 'in_progress', 'tool', ARGV[1], 'label', label,
    'fp', ARGV[2], 'owner', ARGV[3], 'instance', ARGV[4], 'fence', fence, 'started_ms', now,
    'deadline_ms', now + tonumber(ARGV[5]), 'result', '')
  redis.call('HDEL', KEYS[1], 'ended_ms')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[6], now, KEYS[1])
  -- entries whose record outlived its retention without completing can only be stale
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. (now - tonumber(ARGV[6])))
  return fence
end

if not state or state == 'released' then
  return {'claimed', claim(), '', label}
end
local fence = tonumber(rec[4]) or 0
if rec[2] ~= ARGV[2] then
  redis.call('HINCRBY', KEYS[4], label, 1)
  return {'mismatch', 0, '', label}
end
if state == 'completed' or state == 'failed' then
  redis.call('HINCRBY', KEYS[2], label, 1)
  return {state, fence, rec[6] or '', label}
end
if rec[3] == ARGV[3] then
  return {'claimed', fence, '', label}
end
local deadline = tonumber(rec[5]) or 0
if now < deadline then
  if ARGV[7] == '1' then redis.call('HINCRBY', KEYS[5], label, 1) end
  return {'in_progress', fence, tostring(deadline - now), label}
end
local taken = claim()
redis.call('HINCRBY', KEYS[3], label, 1)
return {'reclaimed', taken, rec[7] or '', label}
