--[[ _prelude: helpers put in front of every script (after its shebang line) by the SDK.
now_ms()                     server time (TIME) in ms since the epoch, and the microseconds
capped(registry, name, cap)  the counter field of `name`: itself while the shard's registry
                             (a set) holds it or has room (fewer than `cap` members), else
                             'other'. No naming habit can grow a counter hash past cap + 1.
]]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[2])
end
local function capped(registry, name, cap)
  if redis.call('SISMEMBER', registry, name) == 1 then return name end
  if redis.call('SCARD', registry) < tonumber(cap) then
    redis.call('SADD', registry, name)
    return name
  end
  return 'other'
end
