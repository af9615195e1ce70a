#!lua
--[[ lock_release: delete the lock only if it is still ours; otherwise count it as lost.
KEYS[1]  {ns}:{N}:lock:{id}
KEYS[2]  {ns}:{N}:stats:locks_lost   hash, field = label
KEYS[3]  {ns}:{N}:locks:exp          zset: "{label}|{id}" -> expiry
KEYS[4]  {ns}:{N}:locks:since        zset: "{label}|{id}" -> start of the current lease
ARGV[1]  the full lock value "{fence}|{owner}" written at acquisition
ARGV[2]  index member "{label}|{id}"
ARGV[3]  label (counter field) given by the acquisition
Returns 1 when released, 0 when the lock expired or belongs to someone else (counted).
]]
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
  return 1
end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
if not current then
  -- expired and nobody took it: the index entries are ours and stale. (When another owner
  -- holds the lock now, they are that holder's and stay.)
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
end
return 0
