#!lua
--[[ heartbeat: publish an instance's state with a short TTL and index it.
KEYS[1]  {ns}:{N}:inst:{instance}   hash, see schema.HEARTBEAT_FIELDS
KEYS[2]  {ns}:{N}:instances         zset: instance -> last heartbeat (server ms)
KEYS[3]  {ns}:{N}:pool              hash: instance -> struct.pack('>ddBddd', heartbeat ms,
                                    ttl ms, ready, pool in use, pool max, pool timeouts)
                                    .. instance (-1: a figure not reported; see
                                    schema.POOL_ENTRY_FORMAT): what the exporter aggregates
                                    with one HVALS per shard
ARGV[1]  instance id
ARGV[2]  ttl, ms
ARGV[3..] field, value pairs
Returns the server time in ms.
Members leave the index and fields the pool hash together, 4 x ttl after their last beat.
]]
local now = now_ms()
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'ts_ms', now, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now, ARGV[1])
local fields = {}
for i = 3, #ARGV - 1, 2 do fields[ARGV[i]] = ARGV[i + 1] end
local function figure(name) return tonumber(fields[name]) or -1 end
redis.call('HSET', KEYS[3], ARGV[1], struct.pack('>ddBddd', now, ttl,
  fields['ready'] == '1' and 1 or 0, figure('pool_in_use'), figure('pool_max'),
  figure('pool_timeouts')) .. ARGV[1])
local cutoff = '(' .. (now - 4 * ttl)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)
for i = 1, #gone, 1000 do
  redis.call('HDEL', KEYS[3], unpack(gone, i, math.min(i + 999, #gone)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
redis.call('PEXPIRE', KEYS[2], 4 * ttl)
redis.call('PEXPIRE', KEYS[3], 4 * ttl)
return now
