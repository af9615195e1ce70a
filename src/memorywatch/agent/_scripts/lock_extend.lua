#!lua
--[[ lock_extend: start a new lease on a lock that is still ours (the renewal watchdog).
KEYS[1]  {ns}:{N}:lock:{id}
KEYS[2]  {ns}:{N}:locks:exp      zset: "{label}|{id}" -> expiry (server ms)
KEYS[3]  {ns}:{N}:locks:since    zset: "{label}|{id}" -> start of the current lease (ms)
ARGV[1]  the full lock value "{fence}|{owner}"
ARGV[2]  new ttl in ms
ARGV[3]  index member "{label}|{id}"
The lease restarts now: since = now, expiry = now + ttl, so the exporter's held / ttl ratio
of a lock renewed in time stays low however long it is held.
Returns 1 when extended, 0 when the lock is no longer ours (release will count it as lost).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local now = now_ms()
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  return 1
end
return 0
