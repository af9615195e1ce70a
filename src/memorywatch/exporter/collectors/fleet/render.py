"""Fleet families from a `FleetSnapshot`: what each schema family is published as, with
every label value set zero-filled and bounded. Reads the snapshot, never changes it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from memorywatch import names, schema
from memorywatch.exporter.collectors.fleet.labels import LabelBudget, keep
from memorywatch.exporter.collectors.fleet.read import (
    CLAIMS_READ,
    OLDEST_LOCKS,
    POOL_USE_BUCKETS,
    FleetSnapshot,
    HeldLease,
    oldest_by_label,
)
from memorywatch.exporter.exposition import Families


@dataclass(frozen=True)
class Published:
    """How one schema counter family is published."""

    metric: str
    help: str
    labels: tuple[str, ...]
    """The name part of each field is the first label; a second label (status) is the part
    after the schema's field separator."""


COUNTERS: Mapping[str, Published] = {
    schema.FAMILY_LOCK_CONTENDED: Published(
        names.LOCK_CONTENDED,
        "Acquisitions whose first attempt found the lock held by another instance.",
        (names.LABEL_LOCK,),
    ),
    schema.FAMILY_LOCK_TIMEOUTS: Published(
        names.LOCK_TIMEOUTS, "Acquisitions that gave up after their wait.", (names.LABEL_LOCK,)
    ),
    schema.FAMILY_LOCKS_LOST: Published(
        names.LOCKS_LOST,
        "Releases or renewals that found the lock no longer theirs: the holder outlived its TTL.",
        (names.LABEL_LOCK,),
    ),
    schema.FAMILY_TOOL_EXECUTIONS: Published(
        names.TOOL_EXECUTIONS,
        "Tool executions by final status.",
        (names.LABEL_TOOL, names.LABEL_STATUS),
    ),
    schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED: Published(
        names.TOOL_DUPLICATES_SUPPRESSED,
        "Repeated tool calls answered from the stored record: side effect not repeated.",
        (names.LABEL_TOOL,),
    ),
    schema.FAMILY_TOOL_DUPLICATE_EXECUTIONS: Published(
        names.TOOL_DUPLICATE_EXECUTIONS,
        "Tool calls whose side effect ran twice (a holder finished after its claim was taken over).",
        (names.LABEL_TOOL,),
    ),
    schema.FAMILY_TOOL_RECLAIMS: Published(
        names.TOOL_RECLAIMS,
        "In-progress tool claims past their deadline taken over by another caller.",
        (names.LABEL_TOOL,),
    ),
    schema.FAMILY_TOOL_FINGERPRINT_MISMATCHES: Published(
        names.TOOL_FINGERPRINT_MISMATCHES,
        "Replays of an idempotency key with other arguments (refused).",
        (names.LABEL_TOOL,),
    ),
    schema.FAMILY_TOOL_IN_PROGRESS_CONFLICTS: Published(
        names.TOOL_IN_PROGRESS_CONFLICTS,
        "Calls that found the same idempotency key in progress under a live claim.",
        (names.LABEL_TOOL,),
    ),
    schema.FAMILY_TOOL_CLAIMS_LOST: Published(
        names.TOOL_CLAIMS_LOST,
        "Completions that found their claim owned by another caller or gone.",
        (names.LABEL_TOOL,),
    ),
    schema.FAMILY_STATE_MISSES: Published(
        names.STATE_MISSES,
        "State an agent expected and did not find (evicted or expired while still indexed).",
        (names.LABEL_KIND,),
    ),
    schema.FAMILY_STATE_NOT_DURABLE: Published(
        names.STATE_NOT_DURABLE,
        "Durable-mode writes refused: fewer replicas than required acknowledged them in time.",
        (names.LABEL_OP,),
    ),
}
HISTOGRAMS: Mapping[str, Published] = {
    schema.FAMILY_LOCK_WAIT: Published(
        names.LOCK_WAIT, "Seconds waited for a lock, by lock.", (names.LABEL_LOCK,)
    ),
    schema.FAMILY_TURN_DURATION: Published(
        names.TURN_DURATION, "Duration of user turns across the fleet.", ()
    ),
}
SECOND_LABEL_VALUES: Mapping[str, tuple[str, ...]] = {names.LABEL_STATUS: names.TOOL_STATUSES}
"""The values a second label is zero-filled with."""


def _activity(snap: FleetSnapshot) -> dict[str, dict[str, float]]:
    """label -> name -> how much it did this exporter's life, the order the budget keeps
    names in. State-miss kinds are a closed set, so all are always there. A tool with a
    call in progress is there even before any counter of it moved (a first call whose
    holder died counts nothing), so its orphans are not folded into `other`."""
    activity: dict[str, dict[str, float]] = {
        names.LABEL_LOCK: {},
        names.LABEL_TOOL: {},
        names.LABEL_KIND: dict.fromkeys(names.MISS_KINDS, 0.0),
        names.LABEL_OP: dict.fromkeys(names.DURABLE_OPS, 0.0),
    }
    for family, published in COUNTERS.items():
        seen = activity[published.labels[0]]
        for field_name, value in snap.counters.get(family, {}).items():
            head = _parts(field_name, published)[0]
            seen[head] = seen.get(head, 0.0) + value
    for name, hist in snap.histograms.get(schema.FAMILY_LOCK_WAIT, {}).items():
        seen = activity[names.LABEL_LOCK]
        seen[name] = seen.get(name, 0.0) + hist.count
    for claim in snap.tool_claims:
        activity[names.LABEL_TOOL].setdefault(claim.tool, 0.0)
    return activity


def _parts(field_name: str, published: Published) -> tuple[str, ...]:
    return schema.split_field(field_name) if len(published.labels) == 2 else (field_name,)


def add_fleet_families(snap: FleetSnapshot, out: Families, budget: LabelBudget) -> None:
    """Every family read from the schema (not the background trackers' ones).

    One value set per label, shared by all its families and zero-filled: a lock whose first
    lost lease happens now already has `memorywatch_locks_lost_total{lock=...} 0` from
    earlier scrapes, so `increase()` sees the step from 0 to 1 instead of a series that
    starts at 1. Names beyond the budget are summed into `other`.
    """
    out.gauge(
        names.SCHEMA_INFO,
        "The state schema version agents wrote into Redis (absent: no agent has run yet).",
        1,
        {names.LABEL_VERSION: snap.version if snap.version is not None else names.VERSION_ABSENT},
    )
    universe = budget.values(_activity(snap))
    _add_counters(snap, out, universe)
    _add_histograms(snap, out, universe)
    out.gauge(
        names.SESSIONS_ACTIVE,
        "Sessions with activity within the session window (from the session index).",
        snap.sessions_active,
    )
    _add_instances(snap, out)
    _add_held(snap, out, universe[names.LABEL_LOCK])
    _add_orphans(snap, out, universe[names.LABEL_TOOL])
    _add_queues(snap, out)


def _add_counters(snap: FleetSnapshot, out: Families, universe: dict[str, list[str]]) -> None:
    for family, published in COUNTERS.items():
        out.declare(published.metric, published.help, "counter")
        kept = universe[published.labels[0]]
        rest = [SECOND_LABEL_VALUES[label] for label in published.labels[1:]]
        folded: dict[tuple[str, ...], float] = {}
        for name in kept:
            for tail in rest[0] if rest else (None,):
                folded[(name, tail) if tail else (name,)] = 0.0
        for field_name, value in snap.counters.get(family, {}).items():
            parts = _parts(field_name, published)
            key = (keep(parts[0], kept), *parts[1:])
            folded[key] = folded.get(key, 0.0) + value
        for key, value in sorted(folded.items()):
            labels = dict(zip(published.labels, key, strict=True))
            out.counter(published.metric, published.help, value, labels)


def _add_histograms(snap: FleetSnapshot, out: Families, universe: dict[str, list[str]]) -> None:
    for family, published in HISTOGRAMS.items():
        out.declare(published.metric, published.help, "histogram")
        data = snap.histograms.get(family, {})
        label = published.labels[0] if published.labels else None
        kept = universe[label] if label else list(data)
        merged: dict[str, tuple[list[float], list[str], float, float]] = {}
        for name, hist in data.items():
            target = keep(name, kept)
            counts, _les, total, count = merged.get(
                target, ([0.0] * len(hist.buckets), [], 0.0, 0.0)
            )
            merged[target] = (
                [c + b[1] for c, b in zip(counts, hist.buckets, strict=True)],
                [b[0] for b in hist.buckets],
                total + hist.sum,
                count + hist.count,
            )
        for name, (counts, les, total, count) in sorted(merged.items()):
            labels = {label: name} if label else {}
            if family == schema.FAMILY_LOCK_WAIT:
                # One wait observation per successful acquisition: the SDK keeps no
                # separate acquisitions counter, so its count is that counter.
                out.counter(names.LOCK_ACQUISITIONS, "Locks taken, by lock.", count, labels)
            out.histogram(
                published.metric,
                published.help,
                labels,
                list(zip(les, counts, strict=True)),
                total,
                count,
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
        HeldLease(keep(lease.label, kept), lease.held, lease.lease) for lease in snap.oldest_locks
    )
    for label, lease in sorted(folded.items()):
        out.gauge(names.LOCK_OLDEST_HELD, "", lease.held, {names.LABEL_LOCK: label})
        out.gauge(names.LOCK_TTL, "", lease.lease, {names.LABEL_LOCK: label})
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


def _add_orphans(snap: FleetSnapshot, out: Families, kept: list[str]) -> None:
    """In-progress claims whose holder is gone, by tool. The count is zero-filled like the
    tool counters (the alert sees 0 -> 1); the age and the time to reclaim exist only for
    tools with an orphan, since 0 would read as "a retry may run it now"."""
    orphaned = dict.fromkeys(kept, 0.0)
    oldest: dict[str, float] = {}
    reclaim: dict[str, float] = {}
    for claim in snap.tool_claims:
        if claim.holder_alive:
            continue
        tool = keep(claim.tool, kept)
        orphaned[tool] = orphaned.get(tool, 0.0) + 1
        oldest[tool] = max(oldest.get(tool, 0.0), claim.age)
        reclaim[tool] = min(reclaim.get(tool, math.inf), claim.reclaim_in)
    out.declare(
        names.TOOL_CALLS_ORPHANED,
        "Tool calls in progress whose holder sends no heartbeat (it died mid-call): whether "
        f"their side effect happened is unknown. Among the {CLAIMS_READ} oldest claims of "
        "each shard.",
        "gauge",
    )
    out.declare(
        names.TOOL_ORPHAN_OLDEST,
        "Age of the oldest orphaned tool call of each tool (absent: none).",
        "gauge",
    )
    out.declare(
        names.TOOL_ORPHAN_RECLAIM,
        "Seconds until the soonest orphaned call of each tool passes its deadline and a retry "
        "reclaims it and runs the tool again; negative: a retry would now (absent: none).",
        "gauge",
    )
    for tool, count in sorted(orphaned.items()):
        labels = {names.LABEL_TOOL: tool}
        out.gauge(names.TOOL_CALLS_ORPHANED, "", count, labels)
        if tool in oldest:
            out.gauge(names.TOOL_ORPHAN_OLDEST, "", oldest[tool], labels)
            out.gauge(names.TOOL_ORPHAN_RECLAIM, "", reclaim[tool], labels)


def _add_instances(snap: FleetSnapshot, out: Families) -> None:
    """The fleet's pools as aggregates over its live instances: a bounded set of series
    whatever the fleet's size or churn (pod names change every deploy). The per-pod view is
    each pod's own OpenTelemetry ``db_client_connection_*``; only the --top-instances most
    used pools are named here, to say which pod to look at."""
    pool = snap.pool
    out.gauge(
        names.AGENT_INSTANCES,
        "Agent instances that sent a heartbeat within the instance window, by readiness.",
        pool.ready,
        {names.LABEL_STATE: names.STATE_READY},
    )
    out.gauge(names.AGENT_INSTANCES, "", pool.not_ready, {names.LABEL_STATE: names.STATE_NOT_READY})
    out.declare(
        names.AGENT_POOL_USE_INSTANCES,
        "Live agent instances whose Redis client pool use (in use / max) is at most le, "
        "cumulative (a gauge histogram over instances; +Inf: every instance reporting its pool).",
        "gauge",
    )
    cumulative = 0
    for le, count in zip((*POOL_USE_BUCKETS, math.inf), pool.buckets, strict=True):
        cumulative += count
        out.gauge(
            names.AGENT_POOL_USE_INSTANCES,
            "",
            cumulative,
            {names.LABEL_LE: "+Inf" if le == math.inf else f"{le:g}"},
        )
    out.gauge(
        names.AGENT_POOL_USE_MAX,
        "Highest Redis client pool use (in use / max) among the live agent instances.",
        pool.max_ratio,
    )
    out.declare(
        names.AGENT_POOL_TOP_USE,
        "Pool use of the live agent instances with the most used pools (at most "
        "--top-instances of them): which pod to look at.",
        "gauge",
    )
    for top in pool.top:
        out.gauge(
            names.AGENT_POOL_TOP_USE, "", top.use_ratio, {names.LABEL_INSTANCE_ID: top.instance_id}
        )
    out.gauge(
        names.AGENT_POOL_TIMEOUTS_REPORTED,
        "Sum of the pool-timeout counters the live agent instances report in their heartbeats. "
        "A gauge: it drops when an instance that had timeouts leaves.",
        pool.timeouts,
    )
    out.gauge(
        names.AGENT_POOL_TIMEOUTS_INSTANCES,
        "Live agent instances that report at least one pool timeout since they started.",
        pool.timeouts_instances,
    )


def _add_queues(snap: FleetSnapshot, out: Families) -> None:
    for queue, stats in sorted(snap.queues.items()):
        labels = {names.LABEL_QUEUE: queue}
        out.gauge(names.QUEUE_LENGTH, "Entries in the queue (XLEN or LLEN).", stats.length, labels)
        if stats.pending is not None:
            out.gauge(
                names.QUEUE_PENDING,
                "Stream entries delivered to a consumer and not yet acknowledged.",
                stats.pending,
                labels,
            )
            out.gauge(
                names.QUEUE_OLDEST_PENDING,
                "Age of the oldest unacknowledged stream entry.",
                stats.oldest_pending,
                labels,
            )
