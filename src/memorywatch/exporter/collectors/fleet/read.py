"""The scrape-time read of the fleet state: three pipelined round trips, no SCAN.

1. The clock, the schema hash and the type of each configured queue (queued on the Redis
   health pipeline, so a Redis where no agent has written costs a scrape no extra trip).
2. Per shard: the counter and histogram hashes (HGETALL; their fields are tool and lock
   names, bounded by the schema's name cap), ZCOUNT of the session and held-lock indexes,
   the live instances, the oldest lock entries and the oldest `CLAIMS_READ` in-progress tool
   claims; per queue XLEN or LLEN.
3. Details of what step 2 found: heartbeat hashes, stream groups' pending summaries, the
   expiry of the oldest lock candidates, the label, holder and deadline of each claim read
   (HMGET; none when no tool call is in progress).

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
        self.instance_ids: set[str] = set()
        self.instances: dict[str, InstanceBeat] = {}
        self.beating: set[str] = set()
        """Instances of the window whose heartbeat hash is present."""
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
        instance_floor = f"({self.now_ms - int(self.options.instance_window * 1000)}"
        for key in layout.instances_keys()[:shards]:
            plan.add(self._instance_ids, "ZRANGEBYSCORE", key, instance_floor, "+inf")
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

    def _instance_ids(self, reply: Any) -> None:
        self.instance_ids.update(str(i) for i in reply or [])

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
        for instance in sorted(self.instance_ids):
            plan.add(
                partial(self._heartbeat, instance),
                "HGETALL",
                layout.heartbeat(instance),
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

    def _heartbeat(self, instance: str, reply: Any) -> None:
        beat: Mapping[str, str] = reply or {}
        if not beat:
            # Its heartbeat hash expired: the instance died (the index keeps it for the
            # window). Dead is not "not ready": counting it so paged AgentInstancesNotReady
            # for a minute after every crash, and its claims are orphans.
            return
        self.beating.add(instance)
        try:
            figures = [
                int(beat.get(name, -1))
                for name in (
                    schema.HEARTBEAT_POOL_IN_USE,
                    schema.HEARTBEAT_POOL_MAX,
                    schema.HEARTBEAT_POOL_TIMEOUTS,
                )
            ]
        except ValueError:
            self.errors[names.ERROR_UNPARSABLE] += 1
            figures = [-1, -1, -1]
        in_use, pool_max, timeouts = (f if f >= 0 else None for f in figures)
        ready = beat.get(schema.HEARTBEAT_READY) == "1"
        self.instances[instance] = InstanceBeat(ready, in_use, pool_max, timeouts)

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
        return reading.snapshot(str(version) if fields and not readable else None)


def read_fleet(client: redis.Redis | RedisCluster, options: FleetOptions) -> FleetSnapshot:
    """The whole read on its own (up to three round trips)."""
    return FleetRead(options, cluster=isinstance(client, RedisCluster)).finish(client, False)
