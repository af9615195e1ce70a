#!lua
--[[ forget_user: delete a user's preferences and the set linking them to their sessions.
KEYS[1]  {ns}:{N}:prefs:{user}
KEYS[2]  {ns}:{N}:usess:{user}
The sessions' histories live in other shards (the session id picks them) and are forgotten
one by one before this runs, so an interrupted forget_user can simply be repeated.
Returns the number of keys removed.
]]
return redis.call('DEL', KEYS[1], KEYS[2])
