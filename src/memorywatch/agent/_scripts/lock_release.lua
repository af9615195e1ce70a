#!lua
--[[ lock_release: delete the lock only if it is still ours; otherwise count it as lost.
KEYS[1]  {ns}:{N}:lock:{name}
KEYS[2]  {ns}:{N}:stats:locks_lost   hash, field = lock name
ARGV[1]  the full lock value "{fence}|{owner}" written at acquisition
ARGV[2]  lock name
Returns 1 when released, 0 when the lock expired or belongs to someone else (counted).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 0
