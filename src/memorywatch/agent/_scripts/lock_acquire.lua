#!lua
--[[ lock_acquire: take a lock, issue its fencing token and count, in one round trip.
KEYS[1]  {ns}:{N}:lock:{name}              string "{fence}|{owner}", PX ttl
KEYS[2]  {ns}:{N}:fence:{name}             integer, INCR, no TTL
KEYS[3]  {ns}:{N}:stats:lock_wait_seconds  hash, fields "{name}|{le}" and "{name}|sum";
                                           its count is the number of acquisitions
KEYS[4]  {ns}:{N}:stats:lock_contended     hash, field = lock name
KEYS[5]  {ns}:{N}:stats:lock_timeouts      hash, field = lock name
KEYS[6]  {ns}:{N}:locks:exp                zset: lock name -> expiry (server ms)
KEYS[7]  {ns}:{N}:locks:since              zset: lock name -> start of the lease (server ms)
ARGV[1]  owner token "{instance}|{nonce}"
ARGV[2]  ttl in ms (always > 0: a lock never lives forever)
ARGV[3]  lock name (the counter field)
ARGV[4]  "1" on the first attempt of this acquisition (a failure counts as contended)
ARGV[5]  "1" on the last attempt (a failure counts as a timeout)
ARGV[6]  wait-histogram field "{name}|{le}" for the wait so far
ARGV[7]  wait so far, seconds ("0" on the first attempt: the sum is left alone)
Returns the fencing token (> 0) when the lock is ours, 0 when someone else holds it.
A repeated call by the same owner returns its token again (idempotent).
]]
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if sep and string.sub(current, sep + 1) == ARGV[1] then
    return tonumber(string.sub(current, 1, sep - 1))
  end
  if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[4], ARGV[3], 1) end
  if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[5], ARGV[3], 1) end
  return 0
end
local fence = redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Holders that died never released: about one acquisition in 8 of the shard, whatever its
-- lock name, prunes up to 16 expired index entries (amortized 2 per acquisition). The choice
-- uses the microseconds of TIME, not the name's fence: per-entity names (order-42) are taken
-- a few times and their fence would never reach 8. Safe to replicate: Redis 7 replicates a
-- script's effects, not the script.
if tonumber(t[2]) % 8 == 0 then
  local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, 16)
  if #stale > 0 then
    redis.call('ZREM', KEYS[6], unpack(stale))
    redis.call('ZREM', KEYS[7], unpack(stale))
  end
end
redis.call('ZADD', KEYS[6], now + tonumber(ARGV[2]), ARGV[3])
redis.call('ZADD', KEYS[7], now, ARGV[3])
redis.call('SET', KEYS[1], fence .. '|' .. ARGV[1], 'PX', ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[6], 1)
if ARGV[7] ~= '0' then redis.call('HINCRBYFLOAT', KEYS[3], ARGV[3] .. '|sum', ARGV[7]) end
return fence
