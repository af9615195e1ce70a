#!lua
--[[ lock_acquire: take a lock, issue its fencing token and count, in one round trip.
KEYS[1]  {ns}:{N}:lock:{id}                string "{fence}|{owner}", PX ttl
KEYS[2]  {ns}:{N}:fence                    integer, INCR: the shard's one fencing counter
KEYS[3]  {ns}:{N}:stats:lock_wait_seconds  hash, fields "{label}|{le}" and "{label}|sum";
                                           its count is the number of acquisitions
KEYS[4]  {ns}:{N}:stats:lock_contended     hash, field = label
KEYS[5]  {ns}:{N}:stats:lock_timeouts      hash, field = label
KEYS[6]  {ns}:{N}:locks:exp                zset: "{label}|{id}" -> expiry (server ms)
KEYS[7]  {ns}:{N}:locks:since              zset: "{label}|{id}" -> start of the lease (ms)
KEYS[8]  {ns}:{N}:names:lock               set: the kinds counted by name (at most ARGV[8])
ARGV[1]  owner token "{instance}|{nonce}"
ARGV[2]  ttl in ms (always > 0: a lock never lives forever)
ARGV[3]  lock kind, or the label the client already got for it (then ARGV[8] is "0")
ARGV[4]  "1" on the first attempt of this acquisition (a failure counts as contended)
ARGV[5]  "1" on the last attempt (a failure counts as a timeout)
ARGV[6]  le of the wait-histogram bucket for the wait so far
ARGV[7]  wait so far, seconds ("0" on the first attempt: the sum is left alone)
ARGV[8]  name cap; "0" when ARGV[3] is a label this shard gave the client before (the
         registry never shrinks, so the answer cannot have changed: one command saved)
ARGV[9]  lock id ("{kind}:{resource}", or the one-argument name)
Returns {fence, label}: fence > 0 when the lock is ours, 0 when someone else holds it; label
is the counter field used (the kind, or "other" beyond the cap). A repeated call by the same
owner returns its token again (idempotent). A token is drawn before the SET NX, so a failed
attempt skips one: tokens still rise strictly, with gaps.
]]
local label = ARGV[3]
if ARGV[8] ~= '0' then label = capped(KEYS[8], ARGV[3], ARGV[8]) end
local fence = redis.call('INCR', KEYS[2])
if not redis.call('SET', KEYS[1], fence .. '|' .. ARGV[1], 'NX', 'PX', ARGV[2]) then
  local current = redis.call('GET', KEYS[1]) or ''
  local sep = string.find(current, '|', 1, true)
  if sep and string.sub(current, sep + 1) == ARGV[1] then
    return {tonumber(string.sub(current, 1, sep - 1)), label}
  end
  if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[4], label, 1) end
  if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[5], label, 1) end
  return {0, label}
end
local now, micros = now_ms()
-- Holders that died never released: about one acquisition in 8 of the shard (chosen by the
-- microseconds of TIME) prunes up to 16 expired index entries, amortized 2 per acquisition,
-- more than the at most 1 entry an acquisition adds. Safe to replicate: Redis 7 replicates a
-- script's effects, not the script.
if micros % 8 == 0 then
  local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, 16)
  if #stale > 0 then
    redis.call('ZREM', KEYS[6], unpack(stale))
    redis.call('ZREM', KEYS[7], unpack(stale))
  end
end
local member = label .. '|' .. ARGV[9]
redis.call('ZADD', KEYS[6], now + tonumber(ARGV[2]), member)
redis.call('ZADD', KEYS[7], now, member)
redis.call('HINCRBY', KEYS[3], label .. '|' .. ARGV[6], 1)
if ARGV[7] ~= '0' then redis.call('HINCRBYFLOAT', KEYS[3], label .. '|sum', ARGV[7]) end
return {fence, label}
