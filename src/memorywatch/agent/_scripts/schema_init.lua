#!lua
--[[ schema_init: write the layout's version and shard count once, return what is stored.
KEYS[1]  {ns}:schema   hash: version, shards
ARGV[1]  schema version this client writes
ARGV[2]  shard count this client writes
Returns the HGETALL of KEYS[1] after the HSETNX of both fields: a client compares it with
its own version and shards and refuses to run on another layout.
]]
redis.call('HSETNX', KEYS[1], 'version', ARGV[1])
redis.call('HSETNX', KEYS[1], 'shards', ARGV[2])
return redis.call('HGETALL', KEYS[1])
