#!lua
--[[ lock_release: delete the lock only if it is still ours; otherwise count it as lost.
KEYS[1]  {ns}:{N}:lock:{name}
KEYS[2]  {ns}:{N}:stats:locks_lost   hash, field = lock name
KEYS[3]  {ns}:{N}:locks:exp          zset: lock name -> expiry
KEYS[4]  {ns}:{N}:locks:since        zset: lock name -> acquisition
ARGV[1]  the full lock value "{fence}|{owner}" written at acquisition
ARGV[2]  lock name
Returns 1 when released, 0 when the lock expired or belongs to someone else (counted).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
  return 1
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 0
