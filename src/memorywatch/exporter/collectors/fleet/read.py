"""The scrape-time read of the fleet state: three pipelined round trips (a fourth while a tool
call is in progress), no SCAN.

1. The clock, the schema hash and the type of each configured queue (queued on the Redis
   health pipeline, so a Redis where no agent has written costs a scrape no extra trip).
2. Per shard: the counter and histogram hashes (HGETALL; their fields are tool and lock
   names, bounded by the schema's name cap), ZCOUNT of the session and held-lock indexes,
   the oldest lock entries and the oldest `CLAIMS_READ` in-progress tool
   claims; per queue XLEN or LLEN.
3. Details of what step 2 found: per shard one `POOL_SCRIPT` that reads the pool aggregates
   the heartbeats keep (readiness counts, pool-use buckets, timeouts, the K most used) in
   O(K + buckets), walking the live instances only for diagnose; stream
   groups' pending summaries, the expiry of the oldest lock candidates, the label, holder and
   deadline of each claim read (HMGET; none when no tool call is in progress).

Nothing in a scrape is per instance on the wire, in Python or in Redis: 10,000 heartbeats
cost one EVAL per shard that does not walk them (`bench/bench_instances.py`). Only when a tool call is
in progress, a fourth trip asks whether each claim's holder still beats (EXISTS of its
heartbeat hash, at most `CLAIMS_READ` per shard).

Each step is a `ReadPlan` whose commands carry their own decoders; the decoders fill a
`_Reading`, and the result is a frozen `FleetSnapshot` that rendering only reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import redis
from redis.cluster import RedisCluster

from memorywatch import names, schema
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.readplan import ReadPlan

OLDEST_LOCKS = 10
"""Live locks read per shard to find the longest-held ones, and how many kinds are published."""
CLAIMS_READ = 50
"""Oldest in-progress tool claims read per shard (ZRANGE, then one HMGET each): the bound on
`FleetSnapshot.tool_claims` and on what a scrape costs while many calls are in progress."""


@dataclass(frozen=True)
class InstanceBeat:
    """One live instance's heartbeat; a pool figure is None when the instance cannot tell."""

    ready: bool
    pool_in_use: int | None = None
    pool_max: int | None = None
    pool_timeouts: int | None = None


POOL_USE_BUCKETS: tuple[float, ...] = schema.POOL_USE_BUCKETS
"""Upper bounds of the pool-use distribution over instances (used / max); +Inf is implied
(an instance can report more in use than its max while a pool resizes)."""
POOL_DISCOUNT_MAX = 1000
"""Expired instances a shard's `POOL_SCRIPT` takes out of the kept aggregates itself (those no
heartbeat has pruned yet); with more, it walks the shard's pool hash instead (the whole fleet
of a shard died at once: rare, and as costly as a scrape was before the aggregates)."""


@dataclass(frozen=True)
class TopInstance:
    """One of the K instances with the highest pool use."""

    instance_id: str
    use_ratio: float
    in_use: int
    pool_max: int


@dataclass(frozen=True)
class PoolSummary:
    """The live instances' heartbeats, aggregated server-side (bounded whatever the fleet)."""

    ready: int = 0
    not_ready: int = 0
    reporting: int = 0
    """Live instances that report both pool figures (the distribution's count)."""
    buckets: tuple[int, ...] = (0,) * (len(POOL_USE_BUCKETS) + 1)
    """Instances per bucket, not cumulative: `POOL_USE_BUCKETS` then above the last bound."""
    ratio_sum: float = 0.0
    max_ratio: float = 0.0
    timeouts: int = 0
    """Sum of the pool-timeout counters the live instances report."""
    timeouts_instances: int = 0
    """Live instances whose pool-timeout counter is above 0."""
    top: tuple[TopInstance, ...] = ()
    """Most used first (ties by id), at most K."""

    def merge(self, other: PoolSummary, k: int) -> PoolSummary:
        top = sorted((*self.top, *other.top), key=lambda t: (-t.use_ratio, t.instance_id))
        return PoolSummary(
            self.ready + other.ready,
            self.not_ready + other.not_ready,
            self.reporting + other.reporting,
            tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
            self.ratio_sum + other.ratio_sum,
            max(self.max_ratio, other.max_ratio),
            self.timeouts + other.timeouts,
            self.timeouts_instances + other.timeouts_instances,
            tuple(top[:k]),
        )


@dataclass(frozen=True)
class QueueStats:
    length: float
    pending: float | None = None
    """Stream entries delivered and not acknowledged; None for a list."""
    oldest_pending: float = 0.0


@dataclass(frozen=True)
class HeldLease:
    label: str
    held: float
    """Seconds since the lease was taken or last renewed."""
    lease: float
    """The TTL it was taken or renewed with, in seconds."""


@dataclass(frozen=True)
class ToolClaim:
    """One in-progress tool call: its tool (a label, never the idempotency key), how long
    ago it was claimed, whether its holder still beats, and when a retry may reclaim it."""

    tool: str
    age: float
    """Seconds since the claim (its score in the in-progress index)."""
    holder_alive: bool
    """The holding instance is among the live ones this read found: in the instances index
    within the instance window, with its heartbeat hash present. False: orphaned, the
    outcome of its side effect is unknown."""
    reclaim_in: float
    """Seconds until the claim's deadline, after which a retry reclaims it and runs the tool
    again; negative when a retry would already."""


@dataclass(frozen=True)
class FleetSnapshot:
    now_ms: int
    schema_fields: Mapping[str, str]
    counters: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    histograms: Mapping[str, Mapping[str, schema.HistogramData]] = field(default_factory=dict)
    sessions_active: int = 0
    instances: Mapping[str, InstanceBeat] = field(default_factory=dict)
    """Each live instance's heartbeat: read only with `FleetOptions.instance_details`
    (diagnose); the exporter publishes `pool` and never reads this per instance."""
    pool: PoolSummary = field(default_factory=PoolSummary)
    locks_held: int = 0
    oldest_locks: tuple[HeldLease, ...] = ()
    """The oldest live lease of each lock kind, for the kinds with the oldest leases."""
    tools_in_progress: int = 0
    oldest_tool_claim_ms: int | None = None
    tool_claims: tuple[ToolClaim, ...] = ()
    """The oldest `CLAIMS_READ` in-progress claims of each shard whose record still exists,
    oldest first."""
    queues: Mapping[str, QueueStats] = field(default_factory=dict)
    errors: Mapping[str, int] = field(default_factory=dict)
    foreign_version: str | None = None
    """The version in ``{ns}:schema`` when it is not the one this exporter reads."""

    @property
    def version(self) -> str | None:
        return self.schema_fields.get(schema.SCHEMA_FIELD_VERSION)


def oldest_by_label(leases: Iterable[HeldLease]) -> dict[str, HeldLease]:
    """The longest-held of the leases given, one per label."""
    oldest: dict[str, HeldLease] = {}
    for lease in leases:
        if lease.label not in oldest or lease.held > oldest[lease.label].held:
            oldest[lease.label] = lease
    return oldest


def _int(value: Any) -> int:
    return int(value or 0)


POOL_MODE_AGGREGATES = 0
POOL_MODE_DETAILS = 1

# POOL_SCRIPT reads one shard's pool aggregates, which the SDK's heartbeat script keeps next
# to the pool hash (docs/schema.md, *Heartbeats*): the sums and bucket counts of the counted
# instances (one HMGET), the most used (one ZRANGE), and, for the instances counted whose
# heartbeat expired and that no heartbeat has pruned yet (at most POOL_DISCOUNT_MAX), their
# figures taken back out. Read-only (it runs on a replica, under a read-only ACL): the
# heartbeats prune. O(K + buckets + expired) in Redis instead of O(instances) (at 10,000
# instances on a 2-core machine: 16-33 ms for the walk this replaced; bench/bench_instances.py).
# The walk remains for diagnose (mode 1), when more than POOL_DISCOUNT_MAX expired, and when
# the aggregates disagree with their own indexes (one of the keys was evicted; they carry TTLs).
# KEYS[1]  {ns}:{N}:pool        hash: instance id -> schema.POOL_ENTRY_FORMAT .. id
# KEYS[2]  {ns}:{N}:pool_live   zset: instance id -> expiry ms of the counted instances
# KEYS[3]  {ns}:{N}:pool_use    zset: instance id -> -(use ratio)
# KEYS[4]  {ns}:{N}:pool_sums   hash: schema.POOL_SUM_FIELDS, le_<bound> counts
# ARGV[1]  now, server ms (step 1's TIME): an instance whose expiry is not after it is dead
# ARGV[2]  K: how many of the most used pools to return
# ARGV[3]  mode: 0 aggregates, 1 also each live instance's figures (diagnose)
# ARGV[4]  POOL_DISCOUNT_MAX
# ARGV[5..] pool-use bucket upper bounds, ascending (the heartbeat's: schema.POOL_USE_BUCKETS)
# Returns {ready, not_ready, reporting, timeouts_sum, instances_with_timeouts,
#          ratio_sum (string), max_ratio (string), {count per bucket, then above the last},
#          {id, ratio (string), in_use, max, ...} most used first (ties by id),
#          {} | {id, ready, in_use, max, timeouts, ...} (-1: not reported), unparsable entries}.
# Instances of an SDK that keeps no aggregates (before schema 2's pool aggregates) are not
# counted: the SDK and the exporter ship together.
POOL_SCRIPT = """
local now, k, mode, most_expired = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local bounds, fields = {}, {}
for i = 5, #ARGV do
  bounds[#bounds + 1] = tonumber(ARGV[i])
  fields[#fields + 1] = 'le_' .. ARGV[i]
end
fields[#fields + 1] = 'le_+Inf'
local nb = #bounds
local function bucket(ratio)
  for j = 1, nb do
    if ratio <= bounds[j] then return j end
  end
  return nb + 1
end
local function format(x) return string.format('%.17g', x) end
local expired = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local v = nil  -- the kept sums, when they can answer
if mode == 0 and expired <= most_expired then
  local sums = redis.call('HMGET', KEYS[4], 'ready', 'not_ready', 'reporting', 'ratio_ppm',
                          'timeouts', 'hit', unpack(fields))
  v = {}
  for i = 1, #sums do v[i] = tonumber(sums[i]) or 0 end
  -- an aggregate key evicted (they carry TTLs): the next heartbeat rebuilds; walk until then
  if redis.call('ZCARD', KEYS[2]) ~= v[1] + v[2] or redis.call('ZCARD', KEYS[3]) ~= v[3] then
    v = nil
  end
end
if v then
  local counts = {}
  for i = 1, nb + 1 do counts[i] = v[6 + i] end
  local dead, bad = {}, 0
  if expired > 0 then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
      dead[id] = true
      local entry = redis.call('HGET', KEYS[1], id)
      if entry and #entry > 41 then
        local _, _, rd, used, most, tmo = struct.unpack('>ddBddd', entry)
        if rd == 1 then v[1] = v[1] - 1 else v[2] = v[2] - 1 end
        if tmo > 0 then v[5] = v[5] - tmo; v[6] = v[6] - 1 end
        if used >= 0 and most > 0 then
          local ratio = used / most
          v[3] = v[3] - 1
          v[4] = v[4] - math.floor(ratio * 1e6 + 0.5)
          counts[bucket(ratio)] = counts[bucket(ratio)] - 1
        end
      else
        bad = bad + 1
      end
    end
  end
  -- the dead are at most `expired` of the first k + expired + 1 most used
  local top, max_ratio = {}, 0
  local ranked = redis.call('ZRANGE', KEYS[3], 0, k + expired, 'WITHSCORES')
  local wanted, first = {}, true
  for i = 1, #ranked, 2 do
    local id = ranked[i]
    if not dead[id] then
      -- the score, not the entry: the pool hash may have been evicted on its own
      if first then max_ratio, first = -tonumber(ranked[i + 1]), false end
      if #wanted >= k then break end
      wanted[#wanted + 1] = id
    end
  end
  if #wanted > 0 then
    local entries = redis.call('HMGET', KEYS[1], unpack(wanted))
    for i, id in ipairs(wanted) do
      local entry = entries[i]
      if entry and #entry > 41 then
        local _, _, _, used, most = struct.unpack('>ddBddd', entry)
        top[#top + 1] = id
        top[#top + 1] = format(used / most)
        top[#top + 1] = used
        top[#top + 1] = most
      end
    end
  end
  return {v[1], v[2], v[3], v[5], v[6], format(v[4] / 1e6), format(max_ratio), counts, top, {},
          bad}
end
-- the walk: diagnose, or more expired than the discount allows
local counts = {}
for i = 1, nb + 1 do counts[i] = 0 end
local ready, not_ready, reporting, timeouts, hit, bad = 0, 0, 0, 0, 0, 0
local ratio_sum, max_ratio = 0, 0
local top, live = {}, {}
for _, entry in ipairs(redis.call('HVALS', KEYS[1])) do
  if #entry <= 41 then
    bad = bad + 1
  else
    local ts, ttl, rd, used, most, tmo = struct.unpack('>ddBddd', entry)
    if ts + ttl > now then
      local id = nil
      if rd == 1 then ready = ready + 1 else not_ready = not_ready + 1 end
      if tmo > 0 then timeouts = timeouts + tmo; hit = hit + 1 end
      if used >= 0 and most > 0 then
        local ratio = used / most
        reporting = reporting + 1
        ratio_sum = ratio_sum + math.floor(ratio * 1e6 + 0.5)
        if ratio > max_ratio then max_ratio = ratio end
        counts[bucket(ratio)] = counts[bucket(ratio)] + 1
        local n = #top
        if k > 0 and (n < k or ratio >= top[n][2]) then id = string.sub(entry, 42) end
        if id and (n < k or ratio > top[n][2] or (ratio == top[n][2] and id < top[n][1])) then
          local pos = n + 1
          while pos > 1 and (ratio > top[pos - 1][2]
                             or (ratio == top[pos - 1][2] and id < top[pos - 1][1])) do
            pos = pos - 1
          end
          table.insert(top, pos, {id, ratio, used, most})
          if #top > k then table.remove(top) end
        end
      end
      if mode == 1 then
        id = id or string.sub(entry, 42)
        live[#live + 1] = id
        live[#live + 1] = rd == 1 and '1' or '0'
        live[#live + 1] = used
        live[#live + 1] = most
        live[#live + 1] = tmo
      end
    end
  end
end
local flat = {}
for _, t in ipairs(top) do
  flat[#flat + 1] = t[1]
  flat[#flat + 1] = format(t[2])
  flat[#flat + 1] = t[3]
  flat[#flat + 1] = t[4]
end
return {ready, not_ready, reporting, timeouts, hit, format(ratio_sum / 1e6), format(max_ratio),
        counts, flat, live, bad}
"""


class _Reading:
    """What the decoders of one read fill in, step by step."""

    def __init__(self, options: FleetOptions, with_clock: bool) -> None:
        self.options = options
        self.now_ms = 0
        self.schema_fields: dict[str, str] = {}
        self.queue_types: dict[str, str] = dict.fromkeys(options.queues, "none")
        self.errors: Counter[str] = Counter()
        self.first = ReadPlan()
        if with_clock:
            self.first.add(self.clock, "TIME", required=True)
        self.first.add(self._schema, "HGETALL", schema.Schema(options.namespace).schema_key())
        for queue in options.queues:
            self.first.add(partial(self._queue_type, queue), "TYPE", queue)
        self.hashes: dict[str, list[Mapping[str, str]]] = {}
        self.counters: dict[str, Mapping[str, float]] = {}
        self.histograms: dict[str, Mapping[str, schema.HistogramData]] = {}
        self.sessions_active = 0
        self.instance_keys: list[list[str]] = []
        """The pool hash and `schema.POOL_AGGREGATE_KINDS` keys of each shard read."""
        self.instances: dict[str, InstanceBeat] = {}
        self.pool = PoolSummary()
        self.beating: set[str] = set()
        """Holders of the claims read whose heartbeat hash is present (never published)."""
        self.locks_held = 0
        self.lock_candidates: dict[str, list[tuple[str, float]]] = {}
        self.leases: list[HeldLease] = []
        self.tools_in_progress = 0
        self.oldest_tool_claim_ms: int | None = None
        self.claim_entries: list[tuple[str, int]] = []
        """(record key, claim ms) of the oldest claims of each shard."""
        self.claims: list[tuple[str, str | None, int, int]] = []
        """(label, holder instance, claim ms, deadline ms) of the claims whose record exists."""
        self.queues: dict[str, QueueStats] = {}
        self.pending_groups: dict[str, list[str]] = {}

    # step 1 ------------------------------------------------------------------------------
    def clock(self, reply: Any) -> None:
        """TIME's reply: the server clock every age and window of the read is taken from."""
        seconds, micros = reply
        self.now_ms = int(seconds) * 1000 + int(micros) // 1000

    def _schema(self, reply: Any) -> None:
        self.schema_fields = dict(reply or {})

    def _queue_type(self, queue: str, reply: Any) -> None:
        self.queue_types[queue] = str(reply or "none")

    # step 2 ------------------------------------------------------------------------------
    def counts_plan(self, layout: schema.Schema, shards: int) -> ReadPlan:
        plan = ReadPlan()
        for family in (*schema.COUNTER_FAMILIES, *schema.HISTOGRAM_FAMILIES):
            self.hashes[family] = []
            for key in layout.stats_keys(family)[:shards]:
                plan.add(self.hashes[family].append, "HGETALL", key)
        session_floor = f"({self.now_ms - int(self.options.session_window * 1000)}"
        for key in layout.sessions_keys()[:shards]:
            plan.add(self._sessions, "ZCOUNT", key, session_floor, "+inf")
        self.instance_keys = [
            [pool, *aggregates]
            for pool, aggregates in zip(
                layout.pool_keys()[:shards],
                layout.pool_aggregate_keys_by_shard()[:shards],
                strict=True,
            )
        ]
        for exp_key, since_key, tools_key in zip(
            layout.locks_expiry_keys()[:shards],
            layout.locks_since_keys()[:shards],
            layout.tools_in_progress_keys()[:shards],
            strict=True,
        ):
            plan.add(self._locks_held, "ZCOUNT", exp_key, f"({self.now_ms}", "+inf")
            # 4x candidates: entries of holders that died (expired, not yet pruned) come first
            plan.add(
                partial(self._lock_candidates, exp_key),
                "ZRANGE",
                since_key,
                0,
                4 * OLDEST_LOCKS - 1,
                "WITHSCORES",
                withscores=True,
            )
            plan.add(self._tools_in_progress, "ZCARD", tools_key)
            plan.add(
                self._oldest_tools,
                "ZRANGE",
                tools_key,
                0,
                CLAIMS_READ - 1,
                "WITHSCORES",
                withscores=True,
            )
        for queue, kind in self.queue_types.items():
            if kind == "stream":
                plan.add(partial(self._stream_length, queue), "XLEN", queue)
                plan.add(partial(self._groups, queue), "XINFO GROUPS", queue)
            elif kind == "list":
                plan.add(partial(self._list_length, queue), "LLEN", queue)
            elif kind != "none":
                self.errors[names.ERROR_WRONG_TYPE] += 1
        return plan

    def merge_hashes(self) -> None:
        for family, hashes in self.hashes.items():
            try:
                if family in schema.HISTOGRAM_BUCKETS:
                    self.histograms[family] = schema.merge_histograms(
                        [h or {} for h in hashes], schema.HISTOGRAM_BUCKETS[family]
                    )
                else:
                    self.counters[family] = schema.merge_counters([h or {} for h in hashes])
            except ValueError:
                self.errors[names.ERROR_UNPARSABLE] += 1

    def _sessions(self, reply: Any) -> None:
        self.sessions_active += _int(reply)

    def _locks_held(self, reply: Any) -> None:
        self.locks_held += _int(reply)

    def _lock_candidates(self, exp_key: str, reply: Any) -> None:
        members = [(str(member), float(since)) for member, since in reply or []]
        if members:
            self.lock_candidates[exp_key] = members

    def _tools_in_progress(self, reply: Any) -> None:
        self.tools_in_progress += _int(reply)

    def _oldest_tools(self, reply: Any) -> None:
        """The shard's oldest claims (an empty index, the idle case, costs step 3 nothing)."""
        entries = [(str(record), int(since)) for record, since in reply or []]
        if entries:
            claim_ms = entries[0][1]
            if self.oldest_tool_claim_ms is None or claim_ms < self.oldest_tool_claim_ms:
                self.oldest_tool_claim_ms = claim_ms
            self.claim_entries.extend(entries)

    def _stream_length(self, queue: str, reply: Any) -> None:
        self.queues[queue] = QueueStats(float(reply or 0), pending=0.0)

    def _groups(self, queue: str, reply: Any) -> None:
        groups = reply or []
        pending = sum(int(g.get("pending", 0)) for g in groups)
        stats = self.queues[queue]
        self.queues[queue] = QueueStats(stats.length, pending=float(pending))
        self.pending_groups[queue] = [str(g["name"]) for g in groups if int(g.get("pending", 0))]

    def _list_length(self, queue: str, reply: Any) -> None:
        self.queues[queue] = QueueStats(float(reply or 0))

    # step 3 ------------------------------------------------------------------------------
    def details_plan(self, layout: schema.Schema) -> ReadPlan:
        plan = ReadPlan()
        mode = POOL_MODE_DETAILS if self.options.instance_details else POOL_MODE_AGGREGATES
        for keys in self.instance_keys:
            plan.add(
                partial(self._pool, mode),
                "EVAL",
                POOL_SCRIPT,
                len(keys),
                *keys,
                self.now_ms,
                self.options.top_instances,
                mode,
                POOL_DISCOUNT_MAX,
                *(f"{bound:g}" for bound in POOL_USE_BUCKETS),
            )
        for queue, groups in self.pending_groups.items():
            for group in groups:
                plan.add(partial(self._pending, queue), "XPENDING", queue, group)
        for exp_key, members in self.lock_candidates.items():
            plan.add(
                partial(self._expiries, members),
                "ZMSCORE",
                exp_key,
                *(member for member, _ in members),
            )
        for record, since_ms in self.claim_entries:
            plan.add(
                partial(self._claim, since_ms),
                "HMGET",
                record,
                schema.TOOL_FIELD_LABEL,
                schema.TOOL_FIELD_INSTANCE,
                schema.TOOL_FIELD_DEADLINE_MS,
            )
        return plan

    def _pool(self, mode: int, reply: Any) -> None:
        """One shard's `POOL_SCRIPT` reply (None: the script failed, counted as unparsable)."""
        if reply is None:
            self.errors[names.ERROR_UNPARSABLE] += 1
            return
        try:
            ready, not_ready, reporting, timeouts, hit, ratio_sum, max_ratio = reply[:7]
            buckets, top, live = reply[7], reply[8], reply[9]
            if int(reply[10]):
                self.errors[names.ERROR_UNPARSABLE] += int(reply[10])
            shard = PoolSummary(
                int(ready),
                int(not_ready),
                int(reporting),
                tuple(int(b) for b in buckets),
                float(ratio_sum),
                float(max_ratio),
                int(timeouts),
                int(hit),
                tuple(
                    TopInstance(str(top[i]), float(top[i + 1]), int(top[i + 2]), int(top[i + 3]))
                    for i in range(0, len(top), 4)
                ),
            )
        except (ValueError, TypeError, IndexError):
            self.errors[names.ERROR_UNPARSABLE] += 1
            return
        self.pool = self.pool.merge(shard, self.options.top_instances)
        if mode == POOL_MODE_DETAILS:
            for i in range(0, len(live), 5):
                instance = str(live[i])
                in_use, pool_max, pool_timeouts = (
                    int(v) if int(v) >= 0 else None for v in live[i + 2 : i + 5]
                )
                self.instances[instance] = InstanceBeat(
                    str(live[i + 1]) == "1", in_use, pool_max, pool_timeouts
                )

    def _pending(self, queue: str, reply: Any) -> None:
        oldest_id = (reply or {}).get("min")
        if oldest_id:
            age = max(self.now_ms - int(str(oldest_id).split("-")[0]), 0) / 1000
            stats = self.queues[queue]
            oldest = max(stats.oldest_pending, age)
            self.queues[queue] = QueueStats(stats.length, stats.pending, oldest)

    def _expiries(self, members: list[tuple[str, float]], reply: Any) -> None:
        expiries = reply or [None] * len(members)
        for (member, since), expiry in zip(members, expiries, strict=True):
            if expiry is not None and float(expiry) > self.now_ms:
                self.leases.append(
                    HeldLease(
                        schema.lock_member_label(member),
                        (self.now_ms - since) / 1000,
                        (float(expiry) - since) / 1000,
                    )
                )

    def _claim(self, since_ms: int, reply: Any) -> None:
        """A claim's record: gone (expired or evicted while indexed, so nothing holds its
        key and no holder can be judged) is left out."""
        label, instance, deadline = reply or (None, None, None)
        if label is None and instance is None and deadline is None:
            return
        try:
            deadline_ms = int(str(deadline))
        except ValueError:
            self.errors[names.ERROR_UNPARSABLE] += 1
            return
        self.claims.append((str(label or schema.OTHER), instance, since_ms, deadline_ms))

    # step 4 (only while a tool call is in progress) ---------------------------------------
    def holders_plan(self, layout: schema.Schema) -> ReadPlan:
        """Whether each claim's holder still beats: its heartbeat hash exists (its TTL is
        shorter than the instance window, so it beat within the window)."""
        plan = ReadPlan()
        for holder in sorted({h for _, h, _, _ in self.claims if h is not None}):
            plan.add(partial(self._holder, holder), "EXISTS", layout.heartbeat(holder))
        return plan

    def _holder(self, holder: str, reply: Any) -> None:
        if _int(reply):
            self.beating.add(holder)

    def tool_claims(self) -> tuple[ToolClaim, ...]:
        """The claims read, joined with the live instances the same read found."""
        claims = [
            ToolClaim(
                tool=label,
                age=max(self.now_ms - since_ms, 0) / 1000,
                holder_alive=instance is not None and instance in self.beating,
                reclaim_in=(deadline_ms - self.now_ms) / 1000,
            )
            for label, instance, since_ms, deadline_ms in self.claims
        ]
        return tuple(sorted(claims, key=lambda claim: -claim.age))

    def snapshot(self, foreign_version: str | None) -> FleetSnapshot:
        ranked = sorted(oldest_by_label(self.leases).values(), key=lambda lease: -lease.held)
        return FleetSnapshot(
            now_ms=self.now_ms,
            schema_fields=self.schema_fields,
            counters=self.counters,
            histograms=self.histograms,
            sessions_active=self.sessions_active,
            instances=self.instances,
            pool=self.pool,
            locks_held=self.locks_held,
            oldest_locks=tuple(ranked[:OLDEST_LOCKS]),
            tools_in_progress=self.tools_in_progress,
            oldest_tool_claim_ms=self.oldest_tool_claim_ms,
            tool_claims=self.tool_claims(),
            queues=self.queues,
            errors=dict(self.errors),
            foreign_version=foreign_version,
        )


class FleetRead:
    """One scrape's read of the fleet state.

    `first` is step 1's plan: the exporter queues it on the Redis health pipeline and hands
    the replies to `first.decode`, or `finish` runs it alone. With a `RedisCluster` client the
    pipelines are split by slot across the nodes (the schema's hash tags keep each shard's keys
    in one slot); TIME, which a cluster pipeline refuses, is asked of one node beforehand.
    """

    def __init__(self, options: FleetOptions, cluster: bool = False) -> None:
        self._cluster = cluster
        self._reading = _Reading(options, with_clock=not cluster)
        self.first = self._reading.first

    def finish(self, client: redis.Redis | RedisCluster, first_done: bool) -> FleetSnapshot:
        reading = self._reading
        if not first_done:
            if self._cluster:
                reading.clock(client.time())
            self.first.run(client)
        fields = reading.schema_fields
        try:
            layout = schema.Schema(
                reading.options.namespace,
                int(fields.get(schema.SCHEMA_FIELD_SHARDS, schema.STANDALONE_SHARDS)),
            )
        except ValueError:
            reading.errors[names.ERROR_UNPARSABLE] += 1
            layout = schema.Schema(reading.options.namespace)
        # No schema hash: no agent ever wrote here, so there is nothing per shard to read.
        # Another version's layout is not ours to read: schema_info says which.
        version = fields.get(schema.SCHEMA_FIELD_VERSION)
        readable = bool(fields) and version == str(schema.SCHEMA_VERSION)
        shards = layout.shards if readable else 0
        reading.counts_plan(layout, shards).run(client)
        reading.merge_hashes()
        reading.details_plan(layout).run(client)
        reading.holders_plan(layout).run(client)
        return reading.snapshot(str(version) if fields and not readable else None)


def read_fleet(client: redis.Redis | RedisCluster, options: FleetOptions) -> FleetSnapshot:
    """The whole read on its own (up to four round trips)."""
    return FleetRead(options, cluster=isinstance(client, RedisCluster)).finish(client, False)
