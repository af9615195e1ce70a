#!lua
--[[ heartbeat: publish an instance's state with a short TTL, index it, and keep the shard's
pool aggregates so that the exporter reads them in O(K + buckets), not O(instances).
KEYS[1]  {ns}:{N}:inst:{instance}   hash, see schema.HEARTBEAT_FIELDS
KEYS[2]  {ns}:{N}:instances         zset: instance -> last heartbeat (server ms)
KEYS[3]  {ns}:{N}:pool              hash: instance -> struct.pack('>ddBddd', heartbeat ms,
                                    ttl ms, ready, pool in use, pool max, pool timeouts)
                                    .. instance (-1: a figure not reported; see
                                    schema.POOL_ENTRY_FORMAT)
KEYS[4]  {ns}:{N}:pool_live         zset: instance -> expiry ms (heartbeat ms + ttl) of the
                                    instances whose figures are in KEYS[5], KEYS[6]
KEYS[5]  {ns}:{N}:pool_use          zset: instance -> -(in use / max), reporting instances
KEYS[6]  {ns}:{N}:pool_sums         hash: schema.POOL_SUM_FIELDS and le_<bound> counts
ARGV[1]  instance id
ARGV[2]  ttl, ms
ARGV[3..] field, value pairs
Returns the server time in ms.
Invariant: an id is in pool_live exactly when its pool entry's figures are in pool_sums (and
in pool_use when it reports both pool figures). An instance that stops beating without a
word leaves them when a later heartbeat of the shard finds it expired (at most PRUNE per
beat); the exporter discounts the expired ones no beat has pruned yet.
Members leave the index and fields the pool hash together, 4 x ttl after their last beat.
Eviction: all six keys carry TTLs, so a volatile-* policy may take any of them. A beat that
finds the aggregates disagreeing with their own indexes (ZCARD pool_live against ready +
not_ready, ZCARD pool_use against reporting) rebuilds them from the pool hash, once, in
O(instances); a pool entry 4 x ttl past its beat goes then too. Until then the exporter reads
the pool hash itself (POOL_SCRIPT checks the same two equalities).
]]
local PRUNE = 100
local BOUNDS = {0.25, 0.5, 0.75, 0.9, 1}  -- schema.POOL_USE_BUCKETS
local BUCKETS = {'le_0.25', 'le_0.5', 'le_0.75', 'le_0.9', 'le_1', 'le_+Inf'}
local now = now_ms()
local ttl = tonumber(ARGV[2])
local id = ARGV[1]
-- add (sign 1) or take back (sign -1) one packed entry's figures
local function count(entry, sign)
  local _, _, rd, used, most, tmo = struct.unpack('>ddBddd', entry)
  redis.call('HINCRBY', KEYS[6], rd == 1 and 'ready' or 'not_ready', sign)
  if tmo > 0 then
    redis.call('HINCRBY', KEYS[6], 'timeouts', sign * tmo)
    redis.call('HINCRBY', KEYS[6], 'hit', sign)
  end
  if used >= 0 and most > 0 then
    local ratio = used / most
    local b = #BUCKETS
    for j = 1, #BOUNDS do
      if ratio <= BOUNDS[j] then b = j; break end
    end
    redis.call('HINCRBY', KEYS[6], 'reporting', sign)
    local ppm = math.floor(ratio * 1e6 + 0.5)  -- millionths: integer sums do not drift
    if ppm > 0 then redis.call('HINCRBY', KEYS[6], 'ratio_ppm', sign * ppm) end  -- no '-0'
    redis.call('HINCRBY', KEYS[6], BUCKETS[b], sign)
  end
end
local function retire(member)
  if redis.call('ZSCORE', KEYS[4], member) then
    local entry = redis.call('HGET', KEYS[3], member)
    if entry and #entry > 41 then count(entry, -1) end
    redis.call('ZREM', KEYS[4], member)
    redis.call('ZREM', KEYS[5], member)
  end
end
redis.call('HSET', KEYS[1], 'ts_ms', now, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now, id)
local fields = {}
for i = 3, #ARGV - 1, 2 do fields[ARGV[i]] = ARGV[i + 1] end
local function figure(name) return tonumber(fields[name]) or -1 end
retire(id)
local used, most = figure('pool_in_use'), figure('pool_max')
local entry = struct.pack('>ddBddd', now, ttl, fields['ready'] == '1' and 1 or 0, used, most,
  figure('pool_timeouts')) .. id
redis.call('HSET', KEYS[3], id, entry)
count(entry, 1)
redis.call('ZADD', KEYS[4], now + ttl, id)
if used >= 0 and most > 0 then redis.call('ZADD', KEYS[5], -(used / most), id) end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, PRUNE)) do
  retire(member)
end
local cutoff = '(' .. (now - 4 * ttl)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)
for i = 1, #gone do retire(gone[i]) end
for i = 1, #gone, 1000 do
  redis.call('HDEL', KEYS[3], unpack(gone, i, math.min(i + 999, #gone)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
local function consistent()
  local sums = redis.call('HMGET', KEYS[6], 'ready', 'not_ready', 'reporting')
  local function n(i) return tonumber(sums[i]) or 0 end
  return redis.call('ZCARD', KEYS[4]) == n(1) + n(2) and redis.call('ZCARD', KEYS[5]) == n(3)
end
if not consistent() then
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
  local all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all, 2 do
    local member, entry = all[i], all[i + 1]
    if #entry > 41 then
      local ts, life, _, u, m = struct.unpack('>ddBddd', entry)
      if ts + life > now then
        count(entry, 1)
        redis.call('ZADD', KEYS[4], ts + life, member)
        if u >= 0 and m > 0 then redis.call('ZADD', KEYS[5], -(u / m), member) end
      elseif ts + 4 * life < now then
        redis.call('HDEL', KEYS[3], member)
      end
    end
  end
end
for i = 2, 6 do redis.call('PEXPIRE', KEYS[i], 4 * ttl) end
return now
