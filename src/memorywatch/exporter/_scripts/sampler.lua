--[[ sampler: one SCAN step of the keyspace sampler, classified and counted next to the data.
No KEYS: SCAN walks the keys of the node the script runs on (on a Cluster, the primary's own
client sends it), so every key it touches is local; the flags (shebang, added with the rules)
let it read them all, on a replica or a Redis at maxmemory too, and it never writes.
ARGV[1]  SCAN cursor
ARGV[2]  SCAN COUNT (keeps one call short: exporter/sampler.py has the cost per key)
The rules come first in the script's text, written once per classifier by exporter/sampler.py
(ScriptPlan), as constant tables: parsing them from ARGV on every call cost more than the keys.
  PREFIX        "{ns}:", the prefix of the memorywatch schema
  STATE, FENCE  the tool record hash's state and fence fields; STATES "|completed|...|"
  UNCLAIMED, MW_OTHER   slots of the keys no rule claims, and of our foreign / wrong-type keys
  ESTIMATE      MEMORY USAGE SAMPLES for unclaimed keys (their members may be millions)
  MEASURE_EVERY of the keys no rule claims, the first of each MEASURE_EVERY in a call gets
                PTTL and MEMORY USAGE; the others are only counted (the caller scales the
                measured bytes up to them)
  P_PATTERN[i], P_SLOT[i], P_TTL[i] (true: TTL required), P_TYPE[i] ("" any), P_SAMPLES[i]:
                the profile rules in the classifier's order (the first match wins)
  BY_FIRST[byte] the rule numbers a key starting with that byte (a number) can match, in
                order; WILD those starting with a wildcard (for every other first byte)
  S_RULE[lookup] a schema rule number, lookup "schema" | "id:KIND" | "shard:KIND" |
                "index:KIND:PART" | "stats"; S_SLOT, S_TYPE, S_TTL, S_CHECK ("lock" | "tool"
                | ""), S_SAMPLES its fields
Returns {next cursor, keys walked, foreign, wrong type, missing TTL, unparsable, memorywatch
seen, then 6 numbers per slot touched: slot, keys, keys measured, bytes, keys without the
required TTL, bytes of keys with no TTL}. Slots are the caller's indexes of (profile, key
class); bytes are those of the measured keys (all of a slot's keys but for unclaimed ones).
TYPE is asked only of keys whose rule expects a type: a measured unclaimed key costs PTTL and
MEMORY USAGE (either says when it vanished between SCAN and now), an unmeasured one no call.
]]
local call, byte, sub, find = redis.call, string.byte, string.sub, string.find
local plen = #PREFIX
local p1 = byte(PREFIX)

-- The schema rule of a key under the prefix, or nil (foreign): exporter/keyclass.py's parse.
local function parse(key)
  local rest = sub(key, plen + 1)
  if rest == 'schema' then return S_RULE['schema'] end
  local kind, tail = string.match(rest, '^{%d+}:([a-z]+)(.*)$')
  if not kind then return nil end
  if tail == '' then return S_RULE['shard:' .. kind] end
  if sub(tail, 1, 1) ~= ':' or #tail == 1 then return nil end
  local found = S_RULE['id:' .. kind] or S_RULE['index:' .. kind .. ':' .. sub(tail, 2)]
  if not found and kind == 'stats' then found = S_RULE['stats'] end
  return found
end

local function record_ok(key, check)
  if check == 'lock' then
    local value = call('GET', key)
    return (not value) or find(value, '^%d+|.') ~= nil
  end
  local r = call('HMGET', key, STATE, FENCE)
  local state, fence = r[1], r[2]
  if not state and not fence then return true end
  return state and find(STATES, '|' .. state .. '|', 1, true) ~= nil
    and fence and find(fence, '^%d+$') ~= nil
end

local scan = call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local keys = scan[2]
local foreign, wrong, missing, unparsable, seen, plain = 0, 0, 0, 0, 0, 0
local count, measured, bytes, leaks, naked = {}, {}, {}, {}, {}
for k = 1, #keys do
  local key = keys[k]
  -- classify: matched slot, TTL required, expected type, record check, samples, ours, foreign
  local mslot, ttl, want, check, samples, ours, bad = nil, false, '', '', ESTIMATE, false, false
  local b1 = byte(key)
  if b1 == p1 and sub(key, 1, plen) == PREFIX then
    ours = true
    local rule = parse(key)
    if rule then
      mslot, ttl, want = S_SLOT[rule], S_TTL[rule], S_TYPE[rule]
      check, samples = S_CHECK[rule], S_SAMPLES[rule]
    else
      mslot, bad = MW_OTHER, true
    end
  else
    local tried = BY_FIRST[b1] or WILD
    for j = 1, #tried do
      local i = tried[j]
      if find(key, P_PATTERN[i]) then
        mslot, ttl, want, samples = P_SLOT[i], P_TTL[i], P_TYPE[i], P_SAMPLES[i]
        break
      end
    end
  end
  local rtype = want
  local skip = false
  if not mslot and not ours then
    plain = plain + 1
    skip = (plain - 1) % MEASURE_EVERY ~= 0
  end
  if skip then
    count[UNCLAIMED] = (count[UNCLAIMED] or 0) + 1
    rtype = 'none'
  elseif want ~= '' then
    rtype = call('TYPE', key)['ok']
  end
  if rtype ~= 'none' then
    local pttl = call('PTTL', key)
    local usage = call('MEMORY', 'USAGE', key, 'SAMPLES', samples)
    if pttl ~= -2 then
      local slot = mslot or UNCLAIMED
      if ours then
        if bad then
          foreign = foreign + 1
          seen = seen + 1
        elseif rtype ~= want then
          wrong = wrong + 1
          slot = MW_OTHER
        else
          seen = seen + 1
        end
      elseif mslot and rtype ~= want then
        slot = UNCLAIMED
      end
      count[slot] = (count[slot] or 0) + 1
      measured[slot] = (measured[slot] or 0) + 1
      if usage then
        bytes[slot] = (bytes[slot] or 0) + usage
        if pttl == -1 then naked[slot] = (naked[slot] or 0) + usage end
      end
      if mslot and slot == mslot then
        if pttl == -1 and ttl and not bad then
          leaks[slot] = (leaks[slot] or 0) + 1
          if ours then missing = missing + 1 end
        end
        if check ~= '' and not record_ok(key, check) then unparsable = unparsable + 1 end
      end
    end
  end
end
local out = {scan[1], #keys, foreign, wrong, missing, unparsable, seen}
for slot, c in pairs(count) do
  out[#out + 1] = slot
  out[#out + 1] = c
  out[#out + 1] = measured[slot] or 0
  out[#out + 1] = bytes[slot] or 0
  out[#out + 1] = leaks[slot] or 0
  out[#out + 1] = naked[slot] or 0
end
return out
