#!lua
--[[ lock_extend: reset the TTL of a lock that is still ours (the renewal watchdog).
KEYS[1]  {ns}:{N}:lock:{name}
ARGV[1]  the full lock value "{fence}|{owner}"
ARGV[2]  new ttl in ms
Returns 1 when extended, 0 when the lock is no longer ours (release will count it as lost).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
