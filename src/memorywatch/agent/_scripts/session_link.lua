#!lua
--[[ session_link: remember that a session belongs to a user (for forget_user).
KEYS[1]  {ns}:{N}:usess:{user}   set of session ids
ARGV[1]  session id
ARGV[2]  ttl, ms (the session ttl: the set outlives none of its sessions by much)
Returns 1.
]]
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
