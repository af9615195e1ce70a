#!lua
--[[ tool_complete: record the outcome of a claim, but only if the caller still owns it.
KEYS[1]  {ns}:{N}:tool:{idempotency_key}
KEYS[2]  {ns}:{N}:stats:tool_executions            fields "{label}|{status}"
KEYS[3]  {ns}:{N}:stats:tool_duplicate_executions  field = label
KEYS[4]  {ns}:{N}:stats:tool_claims_lost           field = label
KEYS[5]  {ns}:{N}:stats:state_misses               field = "tool_record"
KEYS[6]  {ns}:{N}:tools:inprog                     zset: record key -> claim time (ms)
ARGV[1]  owner token of the claim
ARGV[2]  outcome: "completed" | "failed" (final error, stored) | "released" (retryable, frees)
         | "abandoned" (the claim was not replicated in durable mode: the record is deleted
           if it is still our in-progress claim, nothing is counted, the function never ran)
ARGV[3]  result JSON (completed) or error JSON (failed); "" for released
ARGV[4]  tool name
ARGV[5]  retention, ms
ARGV[6]  fencing token of the claim
ARGV[7]  fingerprint of the arguments
ARGV[8]  instance id
ARGV[9]  label: the counter field the claim was given (the tool, or "other")
Returns {status, info}:
  {"ok", ""}                  done; counted in tool_executions "{tool}|completed|failed|retryable"
  {"stolen", other_instance}  another holder reclaimed the record: the record is left alone,
                              the lost claim and (unless released) the duplicate execution counted
  {"missing", ""}             the record is gone (evicted or expired): counted as a lost claim and
                              a state miss; a final outcome is written back so replays still see it
]]
local now = now_ms()
local rec = redis.call('HMGET', KEYS[1], 'state', 'owner', 'instance')
local outcome = ARGV[2]
if outcome == 'abandoned' then
  if rec[1] == 'in_progress' and rec[2] == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[6], KEYS[1])
  end
  return {'ok', ''}
end
local status = outcome
if outcome == 'released' then status = 'retryable' end

if not rec[1] then
  redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
  redis.call('HINCRBY', KEYS[5], 'tool_record', 1)
  if outcome ~= 'released' then
    redis.call('HSET', KEYS[1], 'state', outcome, 'tool', ARGV[4], 'label', ARGV[9], 'fp', ARGV[7],
      'owner', ARGV[1], 'instance', ARGV[8], 'fence', ARGV[6], 'ended_ms', now,
      'result', ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
  redis.call('ZREM', KEYS[6], KEYS[1])
  return {'missing', ''}
end
if rec[2] ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
  if outcome ~= 'released' then redis.call('HINCRBY', KEYS[3], ARGV[9], 1) end
  return {'stolen', rec[3] or ''}
end
if rec[1] ~= 'in_progress' then
  return {'ok', ''}  -- a repeated call by the same owner: already recorded
end
redis.call('HSET', KEYS[1], 'state', outcome, 'ended_ms', now, 'result', ARGV[3])
redis.call('ZREM', KEYS[6], KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('HINCRBY', KEYS[2], ARGV[9] .. '|' .. status, 1)
return {'ok', ''}
