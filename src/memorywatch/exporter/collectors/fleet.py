"""Agent-fleet families read from the state schema the SDK writes (docs/schema.md).

Cheap at any size: a scrape reads the per-shard counter hashes (HGETALL of hashes whose
fields are tool and lock names), counts indexes with ZCOUNT, and reads the heartbeat hash of
each live instance: O(1) and O(log n) commands in three pipelined round trips, never KEYS
or SCAN. Whatever needs the keyspace itself is the background sampler's job (sampler.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import RedisCluster

from memorywatch import names, schema
from memorywatch.exporter.evictions import EvictionTracker
from memorywatch.exporter.exposition import Families
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.sampler import ERROR_KINDS, KeyspaceSampler

log = logging.getLogger("memorywatch.exporter")
OTHER = schema.OTHER
OLDEST_LOCKS = 10
"""Live locks read per shard to find the longest-held ones, and how many are published."""


# schema counter family -> (metric, help, label names of its field parts)
COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    schema.LOCK_CONTENDED: (
        names.LOCK_CONTENDED,
        "Acquisitions whose first attempt found the lock held by another instance.",
        (names.LABEL_LOCK,),
    ),
    schema.LOCK_TIMEOUTS: (
        names.LOCK_TIMEOUTS,
        "Acquisitions that gave up after their wait.",
        (names.LABEL_LOCK,),
    ),
    schema.LOCKS_LOST: (
        names.LOCKS_LOST,
        "Releases or renewals that found the lock no longer theirs: the holder outlived its TTL.",
        (names.LABEL_LOCK,),
    ),
    schema.TOOL_EXECUTIONS: (
        names.TOOL_EXECUTIONS,
        "Tool executions by final status.",
        (names.LABEL_TOOL, names.LABEL_STATUS),
    ),
    schema.TOOL_DUPLICATES_SUPPRESSED: (
        names.TOOL_DUPLICATES_SUPPRESSED,
        "Repeated tool calls answered from the stored record: side effect not repeated.",
        (names.LABEL_TOOL,),
    ),
    schema.TOOL_DUPLICATE_EXECUTIONS: (
        names.TOOL_DUPLICATE_EXECUTIONS,
        "Tool calls whose side effect ran twice (a holder finished after its claim was taken over).",
        (names.LABEL_TOOL,),
    ),
    schema.TOOL_RECLAIMS: (
        names.TOOL_RECLAIMS,
        "In-progress tool claims past their deadline taken over by another caller.",
        (names.LABEL_TOOL,),
    ),
    schema.TOOL_FINGERPRINT_MISMATCHES: (
        names.TOOL_FINGERPRINT_MISMATCHES,
        "Replays of an idempotency key with other arguments (refused).",
        (names.LABEL_TOOL,),
    ),
    schema.TOOL_IN_PROGRESS_CONFLICTS: (
        names.TOOL_IN_PROGRESS_CONFLICTS,
        "Calls that found the same idempotency key in progress under a live claim.",
        (names.LABEL_TOOL,),
    ),
    schema.TOOL_CLAIMS_LOST: (
        names.TOOL_CLAIMS_LOST,
        "Completions that found their claim owned by another caller or gone.",
        (names.LABEL_TOOL,),
    ),
    schema.STATE_MISSES: (
        names.STATE_MISSES,
        "State an agent expected and did not find (evicted or expired while still indexed).",
        (names.LABEL_KIND,),
    ),
}
HISTOGRAMS: dict[str, tuple[str, str, str | None, Sequence[float]]] = {
    schema.LOCK_WAIT: (
        names.LOCK_WAIT,
        "Seconds waited for a lock, by lock.",
        names.LABEL_LOCK,
        schema.LOCK_WAIT_BUCKETS,
    ),
    schema.TURN_DURATION: (
        names.TURN_DURATION,
        "Duration of user turns across the fleet.",
        None,
        schema.TURN_BUCKETS,
    ),
}


@dataclass
class FleetSnapshot:
    now_ms: int
    schema_fields: Mapping[str, str]
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    histograms: dict[str, dict[str, schema.HistogramData]] = field(default_factory=dict)
    sessions_active: int = 0
    instances: dict[str, Mapping[str, str]] = field(default_factory=dict)
    locks_held: int = 0
    oldest_locks: list[tuple[str, float, float]] = field(default_factory=list)
    """(lock label, seconds held, lease length in seconds) of the oldest live lease of each
    lock kind, for the kinds with the oldest leases."""
    tools_in_progress: int = 0
    oldest_tool_claim_ms: int | None = None
    queues: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    foreign_version: str | None = None
    """The version in ``{ns}:schema`` when it is not the one this exporter reads."""


def _ok(reply: Any) -> Any:
    return None if isinstance(reply, Exception) else reply


def queue_first(pipe: Any, options: FleetOptions) -> int:
    """Queue the fleet's first round trip (clock, schema hash, queue types) on `pipe`.

    The exporter adds these to the Redis health pipeline, so a Redis where no agent has
    written costs a scrape no extra round trip. Returns how many replies they add.
    """
    pipe.time()
    pipe.hgetall(f"{options.namespace}:schema")
    for queue in options.queues:
        pipe.type(queue)
    return 2 + len(options.queues)


def read_fleet(
    client: redis.Redis | RedisCluster, options: FleetOptions, first: list[Any] | None = None
) -> FleetSnapshot:
    """Up to three pipelined round trips: schema and clock (or `first`, the replies of
    `queue_first` from a pipeline that already ran); counters and indexes; details.

    With a `RedisCluster` client the pipelines are split by slot across the nodes (the
    schema's hash tags keep each shard's keys in one slot); TIME, which a cluster pipeline
    refuses, is asked of one node beforehand.
    """
    if first is None:
        pipe = client.pipeline(transaction=False)
        if isinstance(client, RedisCluster):
            clock = client.time()
            pipe.hgetall(f"{options.namespace}:schema")
            for queue in options.queues:
                pipe.type(queue)
            first = [clock, *pipe.execute(raise_on_error=False)]
        else:
            queue_first(pipe, options)
            first = pipe.execute(raise_on_error=False)
    if isinstance(first[0], Exception):
        raise first[0]
    seconds, micros = first[0]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    schema_fields = _ok(first[1]) or {}
    snap = FleetSnapshot(now_ms=now_ms, schema_fields=schema_fields)
    try:
        layout = schema.Schema(
            options.namespace,
            int(schema_fields.get(schema.SCHEMA_FIELD_SHARDS, schema.STANDALONE_SHARDS)),
        )
    except ValueError:
        snap.errors["unparsable"] = snap.errors.get("unparsable", 0) + 1
        layout = schema.Schema(options.namespace)
    queue_types = {q: str(_ok(t) or "none") for q, t in zip(options.queues, first[2:], strict=True)}

    # No schema hash: no agent ever wrote here, so there is nothing per shard to read. Another
    # version's layout is not ours to read: schema_info says which, and one log line why.
    version = schema_fields.get(schema.SCHEMA_FIELD_VERSION)
    readable = bool(schema_fields) and version == str(schema.SCHEMA_VERSION)
    if schema_fields and not readable:
        snap.foreign_version = str(version)
    shards = layout.shards if readable else 0

    def take(keys: list[str]) -> list[str]:
        return keys[:shards]

    pipe = client.pipeline(transaction=False)
    families = [*COUNTERS, *HISTOGRAMS]
    for family in families:
        for key in take(layout.stats_keys(family)):
            pipe.hgetall(key)
    session_floor = now_ms - int(options.session_window * 1000)
    for key in take(layout.sessions_keys()):
        pipe.zcount(key, f"({session_floor}", "+inf")
    instance_floor = now_ms - int(options.instance_window * 1000)
    for key in take(layout.instances_keys()):
        pipe.zrangebyscore(key, f"({instance_floor}", "+inf")
    for exp_key, since_key, tools_key in zip(
        take(layout.locks_expiry_keys()),
        take(layout.locks_since_keys()),
        take(layout.tools_in_progress_keys()),
        strict=True,
    ):
        pipe.zcount(exp_key, f"({now_ms}", "+inf")
        # 4x candidates: entries of holders that died (expired, not yet pruned) come first
        pipe.zrange(since_key, 0, 4 * OLDEST_LOCKS - 1, withscores=True)
        pipe.zcard(tools_key)
        pipe.zrange(tools_key, 0, 0, withscores=True)
    for queue in options.queues:
        if queue_types[queue] == "stream":
            pipe.xlen(queue)
            pipe.xinfo_groups(queue)
        elif queue_types[queue] == "list":
            pipe.llen(queue)
    replies = iter(pipe.execute(raise_on_error=False))

    for family in families:
        hashes = [_ok(next(replies)) or {} for _ in range(shards)]
        try:
            if family in HISTOGRAMS:
                buckets = HISTOGRAMS[family][3]
                snap.histograms[family] = schema.merge_histograms(hashes, buckets)
            else:
                snap.counters[family] = schema.merge_counters(hashes)
        except ValueError:
            snap.errors["unparsable"] = snap.errors.get("unparsable", 0) + 1
    snap.sessions_active = sum(int(_ok(next(replies)) or 0) for _ in range(shards))
    instance_ids = sorted({i for _ in range(shards) for i in (_ok(next(replies)) or [])})
    lock_candidates: list[tuple[str, str, float]] = []  # (exp key, member, since ms)
    for exp_key in take(layout.locks_expiry_keys()):
        snap.locks_held += int(_ok(next(replies)) or 0)
        lock_candidates += [(exp_key, str(n), float(t)) for n, t in _ok(next(replies)) or []]
        snap.tools_in_progress += int(_ok(next(replies)) or 0)
        oldest = _ok(next(replies)) or []
        if oldest:
            claim_ms = int(oldest[0][1])
            if snap.oldest_tool_claim_ms is None or claim_ms < snap.oldest_tool_claim_ms:
                snap.oldest_tool_claim_ms = claim_ms

    stream_groups: dict[str, list[str]] = {}
    for queue in options.queues:
        kind = queue_types[queue]
        if kind == "stream":
            length, groups = _ok(next(replies)), _ok(next(replies)) or []
            pending = sum(int(g.get("pending", 0)) for g in groups)
            snap.queues[queue] = {"length": float(length or 0), "pending": float(pending)}
            stream_groups[queue] = [str(g["name"]) for g in groups if int(g.get("pending", 0))]
        elif kind == "list":
            snap.queues[queue] = {"length": float(_ok(next(replies)) or 0)}
        elif kind != "none":
            snap.errors["wrong_type"] = snap.errors.get("wrong_type", 0) + 1

    pipe = client.pipeline(transaction=False)
    for instance in instance_ids:
        pipe.hgetall(layout.heartbeat(instance))
    pending_order = [(q, g) for q, groups in stream_groups.items() for g in groups]
    for queue, group in pending_order:
        pipe.xpending(queue, group)
    by_shard: dict[str, list[tuple[str, float]]] = {}
    for exp_key, name, since in lock_candidates:
        by_shard.setdefault(exp_key, []).append((name, since))
    for exp_key, members in by_shard.items():
        pipe.zmscore(exp_key, [name for name, _ in members])
    wanted = instance_ids or pending_order or by_shard
    details = iter(pipe.execute(raise_on_error=False)) if wanted else iter(())
    for instance in instance_ids:
        snap.instances[instance] = _ok(next(details)) or {}
    for queue, _group in pending_order:
        summary = _ok(next(details)) or {}
        oldest_id = summary.get("min")
        if oldest_id:
            age = max(now_ms - int(str(oldest_id).split("-")[0]), 0) / 1000
            current = snap.queues[queue].get("oldest_pending", 0.0)
            snap.queues[queue]["oldest_pending"] = max(current, age)
    live: list[tuple[str, float, float]] = []
    for members in by_shard.values():
        expiries = _ok(next(details)) or [None] * len(members)
        for (member, since), expiry in zip(members, expiries, strict=True):
            if expiry is not None and float(expiry) > now_ms:
                held, lease = (now_ms - since) / 1000, (float(expiry) - since) / 1000
                live.append((schema.lock_member_label(member), held, lease))
    ranked = sorted(oldest_by_label(live).items(), key=lambda item: -item[1][0])
    snap.oldest_locks = [(label, held, lease) for label, (held, lease) in ranked[:OLDEST_LOCKS]]
    return snap


def oldest_by_label(leases: Iterable[tuple[str, float, float]]) -> dict[str, tuple[float, float]]:
    """label -> (seconds held, lease length) of the longest-held of the ``(label, held,
    lease)`` leases given, one entry per label."""
    oldest: dict[str, tuple[float, float]] = {}
    for label, held, lease in leases:
        if label not in oldest or held > oldest[label][0]:
            oldest[label] = (held, lease)
    return oldest


def add_fleet_families(snap: FleetSnapshot, out: Families, budget: LabelBudget) -> None:
    version = snap.schema_fields.get(schema.SCHEMA_FIELD_VERSION)
    out.gauge(
        names.SCHEMA_INFO,
        "The state schema version agents wrote into Redis (absent: no agent has run yet).",
        1,
        {names.LABEL_VERSION: str(version) if version is not None else "absent"},
    )
    universe = label_values(snap, budget)
    _add_counters(snap, out, universe)
    _add_histograms(snap, out, universe)
    out.gauge(
        names.SESSIONS_ACTIVE,
        "Sessions with activity within the session window (from the session index).",
        snap.sessions_active,
    )
    _add_instances(snap, out)
    _add_held(snap, out, universe[names.LABEL_LOCK])
    for queue, stats in sorted(snap.queues.items()):
        labels = {names.LABEL_QUEUE: queue}
        out.gauge(
            names.QUEUE_LENGTH, "Entries in the queue (XLEN or LLEN).", stats["length"], labels
        )
        if "pending" in stats:
            out.gauge(
                names.QUEUE_PENDING,
                "Stream entries delivered to a consumer and not yet acknowledged.",
                stats["pending"],
                labels,
            )
            out.gauge(
                names.QUEUE_OLDEST_PENDING,
                "Age of the oldest unacknowledged stream entry.",
                stats.get("oldest_pending", 0.0),
                labels,
            )


TOOL_STATUSES = (
    schema.TOOL_STATUS_COMPLETED,
    schema.TOOL_STATUS_FAILED,
    schema.TOOL_STATUS_RETRYABLE,
)
MISS_KINDS = (schema.MISS_HISTORY, schema.MISS_TOOL_RECORD)


class LabelBudget:
    """Which tool and lock names are published as themselves, for the exporter's life.

    The first `limit` names seen (most active first) keep their own label value; later ones
    are summed into `other`. The choice never changes while the exporter runs: re-ranking on
    every scrape would move a name in and out of `other`, which makes `other` go down,
    Prometheus read a counter reset and `increase()` page for losses that never happened.
    Bounded by `limit` names per label.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def kept(self, label: str, activity: Mapping[str, float]) -> set[str]:
        with self._lock:
            kept = self._kept.setdefault(label, set())
            for name in sorted(activity, key=lambda n: (-activity[n], n)):
                if len(kept) >= self.limit:
                    break
                kept.add(name)
            return set(kept)


def label_values(snap: FleetSnapshot, budget: LabelBudget) -> dict[str, list[str]]:
    """The values of each label that every family of that label publishes.

    One set per label, shared by all its families, and zero-filled: a lock whose first lost
    lease happens now already has `memorywatch_locks_lost_total{lock=...} 0` from earlier
    scrapes, so `increase()` sees the step from 0 to 1 instead of a series that starts at 1.
    Names beyond the budget are summed into `other`.
    """
    activity: dict[str, dict[str, float]] = {
        names.LABEL_LOCK: {},
        names.LABEL_TOOL: {},
        names.LABEL_KIND: dict.fromkeys(MISS_KINDS, 0.0),
    }
    for family, (_metric, _help, labels) in COUNTERS.items():
        seen = activity[labels[0]]
        for field_name, value in snap.counters.get(family, {}).items():
            head = schema.split_field(field_name)[0] if len(labels) == 2 else field_name
            seen[head] = seen.get(head, 0.0) + value
    for name, hist in snap.histograms.get(schema.LOCK_WAIT, {}).items():
        seen = activity[names.LABEL_LOCK]
        seen[name] = seen.get(name, 0.0) + hist.count
    result = {}
    for label, values in activity.items():
        kept = budget.kept(label, values)
        result[label] = sorted(kept) + ([OTHER] if set(values) - kept else [])
    return result


def _keep(name: str, kept: list[str]) -> str:
    return name if name in kept else OTHER


def _add_counters(snap: FleetSnapshot, out: Families, universe: dict[str, list[str]]) -> None:
    for family, (metric, help_text, label_names) in COUNTERS.items():
        out.declare(metric, help_text, "counter")
        kept = universe[label_names[0]]
        folded: dict[tuple[str, ...], float] = {}
        for name in kept:
            for status in TOOL_STATUSES if len(label_names) == 2 else (None,):
                folded[(name, status) if status else (name,)] = 0.0
        for name, value in snap.counters.get(family, {}).items():
            parts = schema.split_field(name) if len(label_names) == 2 else (name,)
            key = (_keep(parts[0], kept), *parts[1:])
            folded[key] = folded.get(key, 0.0) + value
        for key, value in sorted(folded.items()):
            out.counter(metric, help_text, value, dict(zip(label_names, key, strict=True)))


def _add_histograms(snap: FleetSnapshot, out: Families, universe: dict[str, list[str]]) -> None:
    for family, (metric, help_text, label, _buckets) in HISTOGRAMS.items():
        out.declare(metric, help_text, "histogram")
        data = snap.histograms.get(family, {})
        kept = universe[label] if label else list(data)
        merged: dict[str, tuple[list[float], list[str], float, float]] = {}
        for name, hist in data.items():
            target = name if name in kept else OTHER
            counts, les, total, count = merged.get(
                target, ([0.0] * len(hist.buckets), [], 0.0, 0.0)
            )
            counts = [c + b[1] for c, b in zip(counts, hist.buckets, strict=True)]
            merged[target] = (
                counts,
                [b[0] for b in hist.buckets],
                total + hist.sum,
                count + hist.count,
            )
        for name, (counts, les, total, count) in sorted(merged.items()):
            labels = {label: name} if label else {}
            if family == schema.LOCK_WAIT:
                # One wait observation per successful acquisition: the SDK keeps no
                # separate acquisitions counter, so its count is that counter.
                out.counter(names.LOCK_ACQUISITIONS, "Locks taken, by lock.", count, labels)
            out.histogram(
                metric, help_text, labels, list(zip(les, counts, strict=True)), total, count
            )


def _add_held(snap: FleetSnapshot, out: Families, kept: list[str]) -> None:
    out.gauge(names.LOCKS_HELD, "Locks held right now (not expired).", snap.locks_held)
    out.declare(
        names.LOCK_OLDEST_HELD,
        "Age of the oldest live lease (since acquisition or last renewal) of each lock kind, "
        f"for the {OLDEST_LOCKS} kinds with the oldest leases.",
        "gauge",
    )
    out.declare(
        names.LOCK_TTL,
        "Length of those leases (the TTL they were taken or renewed with). An age close to "
        "it means the holder is about to lose the lock mid-tool.",
        "gauge",
    )
    folded = oldest_by_label(
        (_keep(name, kept), held, lease) for name, held, lease in snap.oldest_locks
    )
    for label, (held, lease) in sorted(folded.items()):
        out.gauge(names.LOCK_OLDEST_HELD, "", held, {names.LABEL_LOCK: label})
        out.gauge(names.LOCK_TTL, "", lease, {names.LABEL_LOCK: label})
    out.gauge(
        names.TOOLS_IN_PROGRESS,
        "Tool calls claimed and not completed (including claims whose holder died).",
        snap.tools_in_progress,
    )
    oldest = snap.oldest_tool_claim_ms
    out.gauge(
        names.TOOL_OLDEST_IN_PROGRESS,
        "Age of the oldest tool claim still in progress (0 when none).",
        max(snap.now_ms - oldest, 0) / 1000 if oldest is not None else 0.0,
    )


def _add_instances(snap: FleetSnapshot, out: Families) -> None:
    ready = sum(1 for h in snap.instances.values() if h.get("ready") == "1")
    out.gauge(
        names.AGENT_INSTANCES,
        "Agent instances that sent a heartbeat within the instance window, by readiness.",
        ready,
        {names.LABEL_STATE: "ready"},
    )
    out.gauge(
        names.AGENT_INSTANCES, "", len(snap.instances) - ready, {names.LABEL_STATE: "not_ready"}
    )
    out.declare(
        names.AGENT_POOL_CONNECTIONS,
        "Redis client pool connections of each live instance, from its heartbeat.",
        "gauge",
    )
    out.declare(
        names.AGENT_POOL_TIMEOUTS,
        "Times an instance found its Redis client pool exhausted, from its heartbeat.",
        "counter",
    )
    for instance, beat in sorted(snap.instances.items()):
        if not beat:
            continue
        try:
            in_use, pool_max = int(beat.get("pool_in_use", -1)), int(beat.get("pool_max", -1))
            timeouts = int(beat.get("pool_timeouts", -1))
        except ValueError:
            snap.errors["unparsable"] = snap.errors.get("unparsable", 0) + 1
            continue
        labels = {names.LABEL_INSTANCE_ID: instance}
        if in_use >= 0:
            out.gauge(
                names.AGENT_POOL_CONNECTIONS, "", in_use, {**labels, names.LABEL_STATE: "used"}
            )
        if pool_max >= 0:
            out.gauge(
                names.AGENT_POOL_CONNECTIONS, "", pool_max, {**labels, names.LABEL_STATE: "max"}
            )
            if in_use >= 0:
                idle_bound = max(pool_max - in_use, 0)
                out.gauge(
                    names.AGENT_POOL_CONNECTIONS,
                    "",
                    idle_bound,
                    {**labels, names.LABEL_STATE: "idle"},
                )
        if timeouts >= 0:
            out.counter(names.AGENT_POOL_TIMEOUTS, "", timeouts, labels)


class Fleet:
    """The fleet families of one target: a scrape-time read plus the background trackers."""

    def __init__(
        self,
        options: FleetOptions,
        tracker: EvictionTracker | None = None,
        sampler: KeyspaceSampler | None = None,
    ) -> None:
        self.options = options
        self.tracker = tracker
        self.sampler = sampler
        self.labels = LabelBudget(options.max_label_values)
        self._version_said: str | None = None

    def read(
        self, client: redis.Redis | RedisCluster, first: list[Any] | None = None
    ) -> FleetSnapshot:
        return read_fleet(client, self.options, first)

    def start(self) -> None:
        for worker in (self.tracker, self.sampler):
            if worker is not None:
                worker.start()

    def stop(self) -> None:
        for worker in (self.tracker, self.sampler):
            if worker is not None:
                worker.stop()

    def add(self, snap: FleetSnapshot | None, out: Families) -> None:
        """Families from this scrape's read (None if it failed) and the trackers' results."""
        errors: dict[str, int] = {kind: 0 for kind in ERROR_KINDS}
        if snap is not None and snap.foreign_version != self._version_said:
            self._version_said = snap.foreign_version
            if snap.foreign_version is not None:
                log.warning(
                    "%s:schema holds schema version %s, this exporter reads version %s: agent "
                    "fleet metrics are off until the agents run memorywatch >= 0.2",
                    self.options.namespace,
                    snap.foreign_version,
                    schema.SCHEMA_VERSION,
                )
        if snap is not None:
            add_fleet_families(snap, out, self.labels)
            for kind, count in snap.errors.items():
                errors[kind] = errors.get(kind, 0) + count
        out.gauge(
            names.EVICTION_TRACKING,
            "1 while evicted keys are classified from keyspace notifications.",
            1 if self.tracker is not None and self.tracker.live else 0,
        )
        if self.tracker is not None:
            for key_class, count in sorted(self.tracker.counts().items()):
                out.counter(
                    names.EVICTED_KEYS,
                    "Keys Redis evicted, by the class of agent state they held "
                    "(counted since the exporter started).",
                    count,
                    {names.LABEL_KEY_CLASS: key_class},
                )
        result = self.sampler.result() if self.sampler is not None else None
        if result is not None:
            for key_class, count in sorted(result.without_ttl.items()):
                out.gauge(
                    names.KEYS_WITHOUT_TTL,
                    "Keys that must expire but have no TTL, by class (last full sampler pass).",
                    count,
                    {names.LABEL_KEY_CLASS: key_class},
                )
            for kind, count in result.errors.items():
                errors[kind] = errors.get(kind, 0) + count
            out.gauge(
                names.SAMPLER_AGE,
                "Seconds since the keyspace sampler finished the pass these figures come from.",
                time.monotonic() - result.finished_at,
            )
        for kind, count in sorted(errors.items()):
            out.gauge(
                names.SCHEMA_ERRORS,
                "Keys or records in the namespace that break the schema (foreign, wrong type, "
                "missing TTL, unparsable).",
                count,
                {names.LABEL_KIND: kind},
            )
