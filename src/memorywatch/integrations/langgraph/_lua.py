"""The Lua scripts of the LangGraph checkpoint savers, and their KEYS/ARGV contracts.

Every script touches the keys of one thread only (``lgcp``, ``lgix``, ``lgw`` and the
shard's ``stats`` hash share the thread's hash tag), so each runs on one Redis Cluster slot.
A checkpoint is named in the index by its *member* ``{checkpoint_id}\\0{checkpoint_ns}``; a
pending write by its field ``{member}\\0{task_id}\\0{idx}``. Checkpoint ids are uuid6 strings,
so the index's lexicographic order (every score is 0) is their creation order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

_HELPERS: Final = r"""
local NUL = string.char(0)

-- the member part (`{id}\0{ns}`) of a write field `{id}\0{ns}\0{task}\0{idx}`
local function member_of(f)
  local a = string.find(f, NUL, 1, true)
  local b = a and string.find(f, NUL, a + 1, true)
  if not b then return f end
  return string.sub(f, 1, b - 1)
end

-- the namespace part of a member
local function ns_of(m)
  local a = string.find(m, NUL, 1, true)
  return string.sub(m, a + 1)
end

-- the fields and values of the writes of one member: HSCAN matches the prefix in C (cheaper
-- than comparing every field in Lua); the loop ends when the cursor comes back to 0
local function writes_of(wr, member)
  local pattern = string.gsub(member .. NUL, '[%*%?%[%]\\]', '\\%0') .. '*'
  local out, cursor = {}, '0'
  repeat
    local reply = redis.call('HSCAN', wr, cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = reply[1]
    for _, x in ipairs(reply[2]) do out[#out + 1] = x end
  until cursor == '0'
  return out
end

local function id_of(m)
  return string.sub(m, 1, string.find(m, NUL, 1, true) - 1)
end

-- delete the given members (set: member -> true), their records and their writes. Writes may
-- reach Redis before their checkpoint does, so writes of a member not in the index are kept;
-- once the writes hash holds more than `sweep` fields, every write older than the oldest
-- member kept goes too (the checkpoint it waited for never came, or was trimmed since).
local function drop(cp, ix, wr, gone, sweep)
  local n = 0
  for m in pairs(gone) do
    redis.call('HDEL', cp, m)
    redis.call('ZREM', ix, m)
    local found = writes_of(wr, m)
    for i = 1, #found, 2 do redis.call('HDEL', wr, found[i]) end
    n = n + 1
  end
  if n > 0 and redis.call('HLEN', wr) > sweep then
    local oldest = redis.call('ZRANGE', ix, 0, 0)[1]
    local floor = oldest and id_of(oldest)
    for _, f in ipairs(redis.call('HKEYS', wr)) do
      if floor == nil or id_of(f) < floor then redis.call('HDEL', wr, f) end
    end
  end
  return n
end

local function touch(ttl, ...)
  for _, k in ipairs({...}) do redis.call('PEXPIRE', k, ttl) end
end
"""

STORE: Final = r"""
-- KEYS: checkpoints hash, index zset, writes hash[, the run's thread set when it shares the
--       thread's slot]
-- ARGV: ttl ms, max checkpoints, thread id, n, then n (member, record) pairs, then (field,
--       value) pairs
-- Stores the checkpoints and writes, trims the thread to its newest `max` checkpoints (their
-- writes go with them), refreshes the thread's TTL; adds the thread to the run's set (TTL as
-- the thread). Returns how many checkpoints it trimmed.
local cp, ix, wr = KEYS[1], KEYS[2], KEYS[3]
if KEYS[4] then
  redis.call('SADD', KEYS[4], ARGV[3])
  redis.call('PEXPIRE', KEYS[4], ARGV[1])
end
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do
  redis.call('HSET', cp, ARGV[i], ARGV[i + 1])
  redis.call('ZADD', ix, 0, ARGV[i])
end
for i = 5 + 2 * n, #ARGV, 2 do
  redis.call('HSET', wr, ARGV[i], ARGV[i + 1])
end
local excess = redis.call('ZCARD', ix) - tonumber(ARGV[2])
local trimmed = 0
if excess > 0 then
  local gone = {}
  for _, m in ipairs(redis.call('ZRANGE', ix, 0, excess - 1)) do gone[m] = true end
  trimmed = drop(cp, ix, wr, gone, 4 * tonumber(ARGV[2]))
end
touch(ARGV[1], cp, ix, wr)
return trimmed
"""

WRITES: Final = r"""
-- KEYS: checkpoints hash, index zset, writes hash
-- ARGV: ttl ms, then (field, value, replace) triples
-- A regular write keeps the first value stored for its (task, idx); special channels (error,
-- interrupt, ...) replace. LangGraph may send a checkpoint's writes before the checkpoint
-- itself (both leave in background threads), so the checkpoint is not required to exist:
-- writes of checkpoints the thread no longer holds are trimmed by the next store.
local cp, ix, wr = KEYS[1], KEYS[2], KEYS[3]
local stored = 0
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '1' then
    redis.call('HSET', wr, ARGV[i], ARGV[i + 1])
    stored = stored + 1
  else
    stored = stored + redis.call('HSETNX', wr, ARGV[i], ARGV[i + 1])
  end
end
touch(ARGV[1], cp, ix, wr)
return stored
"""

GET: Final = r"""
-- KEYS: checkpoints hash, index zset, writes hash, the shard's state_misses counter hash
-- ARGV: namespace, checkpoint id ('' = the newest of the namespace), ttl ms, miss field
-- Returns {} (no such checkpoint), {member} (the index holds it, its record is gone: a miss,
-- counted), or {member, record, write field, write value, ...}. Refreshes the thread's TTL.
local cp, ix, wr = KEYS[1], KEYS[2], KEYS[3]
local member
if ARGV[2] ~= '' then
  member = ARGV[2] .. NUL .. ARGV[1]
  if not redis.call('ZSCORE', ix, member) then return {} end
else
  local start, size = 0, redis.call('ZCARD', ix)
  while not member and start < size do  -- newest first, 16 at a time
    for _, m in ipairs(redis.call('ZREVRANGE', ix, start, start + 15)) do
      if ns_of(m) == ARGV[1] then member = m break end
    end
    start = start + 16
  end
  if not member then return {} end
end
local record = redis.call('HGET', cp, member)
if not record then
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  return {member}
end
touch(ARGV[3], cp, ix, wr)
local out = {member, record}
for _, x in ipairs(writes_of(wr, member)) do out[#out + 1] = x end
return out
"""

LIST: Final = r"""
-- KEYS: checkpoints hash, index zset, writes hash
-- ARGV: '1' to keep one namespace only (or '0'), that namespace, before id ('' = none),
--       limit ('0' = none)
-- Returns {{member, record, ...} newest first, {write field, value, ...} of those members}.
local cp, ix, wr = KEYS[1], KEYS[2], KEYS[3]
local one_ns, ns, before, limit = ARGV[1] == '1', ARGV[2], ARGV[3], tonumber(ARGV[4])
local found, kept, count = {}, {}, 0
for _, m in ipairs(redis.call('ZREVRANGE', ix, 0, -1)) do
  if limit > 0 and count >= limit then break end
  local a = string.find(m, NUL, 1, true)
  if (not one_ns or string.sub(m, a + 1) == ns)
      and (before == '' or string.sub(m, 1, a - 1) < before) then
    local record = redis.call('HGET', cp, m)
    if record then
      found[#found + 1] = m
      found[#found + 1] = record
      kept[m] = true
      count = count + 1
    end
  end
end
local writes = {}
if count > 0 then
  for _, f in ipairs(redis.call('HKEYS', wr)) do
    if kept[member_of(f)] then
      writes[#writes + 1] = f
      writes[#writes + 1] = redis.call('HGET', wr, f)
    end
  end
end
return {found, writes}
"""

DELETE_RUNS: Final = r"""
-- KEYS: checkpoints hash, index zset, writes hash
-- ARGV: run ids. Deletes the thread's checkpoints whose record starts with one of them (the
-- record's head is `{run id}\0...`) and their writes; returns how many it deleted.
local cp, ix, wr = KEYS[1], KEYS[2], KEYS[3]
local runs, gone = {}, {}
for _, run in ipairs(ARGV) do runs[run] = true end
for _, m in ipairs(redis.call('ZRANGE', ix, 0, -1)) do
  local record = redis.call('HGET', cp, m)
  if record then
    local cut = string.find(record, NUL, 1, true)
    if cut and runs[string.sub(record, 1, cut - 1)] then gone[m] = true end
  end
end
return drop(cp, ix, wr, gone, 0)
"""

PRUNE: Final = r"""
-- KEYS: checkpoints hash, index zset, writes hash
-- ARGV: none. Keeps the newest checkpoint of each namespace (and its writes), deletes the
-- rest; returns how many checkpoints it deleted.
local cp, ix, wr = KEYS[1], KEYS[2], KEYS[3]
local seen, gone = {}, {}
for _, m in ipairs(redis.call('ZREVRANGE', ix, 0, -1)) do
  local ns = ns_of(m)
  if seen[ns] then gone[m] = true else seen[ns] = true end
end
return drop(cp, ix, wr, gone, 0)
"""


@dataclass(frozen=True)
class Script:
    """One script: its text (the helpers first) and the SHA1 ``EVALSHA`` names it by."""

    name: str
    body: str
    text: str = field(init=False)
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        text = f"{_HELPERS}\n{self.body}"
        object.__setattr__(self, "text", text)
        sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", sha)


SCRIPTS: Final = {
    script.name: script
    for script in (
        Script("store", STORE),
        Script("writes", WRITES),
        Script("get", GET),
        Script("list", LIST),
        Script("prune", PRUNE),
        Script("delete_runs", DELETE_RUNS),
    )
}
