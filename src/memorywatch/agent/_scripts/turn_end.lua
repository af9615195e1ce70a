#!lua
--[[ turn_end: record a turn's duration and touch the session's last activity.
KEYS[1]  {ns}:{N}:sessions                      zset (only existing members are touched)
KEYS[2]  {ns}:{N}:stats:turn_duration_seconds   hash, fields "all|{le}" and "all|sum"
ARGV[1]  session id
ARGV[2]  histogram field "all|{le}"
ARGV[3]  duration, seconds
Returns 1.
]]
local now = now_ms()
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBYFLOAT', KEYS[2], 'all|sum', ARGV[3])
return 1
