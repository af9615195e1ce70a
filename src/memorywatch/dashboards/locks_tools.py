"""memorywatch-locks-tools: one turn per session, one run per tool call.

Locks (acquisitions, contention, waits, timeouts, holders near their TTL, lost locks) and
idempotent tools (executions, suppressed and executed duplicates, reclaims, calls orphaned
by a dead holder, stuck calls, records without TTL), the turn latency they add up to, and
the schema version and keyspace sampler age that say whether the schema figures are current.
"""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts.model import DASHBOARD_LOCKS_TOOLS
from memorywatch.dashboards._style import (
    OK_COLOR,
    Context,
    DashboardSpec,
    Panel,
    Query,
    Step,
    increase_in_range,
    rate,
    sel,
)

ONLY_WHILE_HELD = "the oldest-held series exist only while some lock is held."
ONLY_WHILE_ORPHANED = "the orphan age and reclaim series exist only while some call is orphaned."


def _by(label: str, expr: str) -> str:
    return f"sum by ({label}) ({expr})"


def _quantile(q: float, metric: str, label: str | None) -> str:
    by = f"{label}, le" if label else "le"
    return f"histogram_quantile({q:g}, sum by ({by}) ({rate(sel(metric + '_bucket'))}))"


def spec(ctx: Context) -> DashboardSpec:
    lock, tool, status = names.LABEL_LOCK, names.LABEL_TOOL, names.LABEL_STATUS
    version = names.LABEL_VERSION
    lock_legend, tool_legend = "{{" + lock + "}}", "{{" + tool + "}}"
    no_ttl = queries.records_without_ttl(sel)
    stats = (
        Panel(
            "stat",
            "Locks held",
            f"Locks held right now across the fleet ({names.LOCKS_HELD}).",
            "short",
            (Query(f"sum({sel(names.LOCKS_HELD)})"),),
            width=4,
            height=4,
            steps=(Step(OK_COLOR, None),),
        ),
        Panel(
            "stat",
            "Lock timeouts",
            "Acquisitions that gave up waiting in the time range: those turns or tool calls "
            "failed.",
            "short",
            (Query(f"sum({increase_in_range(sel(names.LOCK_TIMEOUTS))})", instant=True),),
            width=4,
            height=4,
            watch=("lock_timeouts",),
        ),
        Panel(
            "stat",
            "Locks lost",
            "Releases that found the lock no longer theirs in the time range: the TTL expired "
            "under its holder, so two holders were possible.",
            "short",
            (Query(f"sum({increase_in_range(sel(names.LOCKS_LOST))})", instant=True),),
            width=4,
            height=4,
            watch=("lock_lost",),
        ),
        Panel(
            "stat",
            "Tools in progress",
            "Tool calls claimed and not yet completed, failed or released.",
            "short",
            (Query(f"sum({sel(names.TOOLS_IN_PROGRESS)})"),),
            width=4,
            height=4,
            steps=(Step(OK_COLOR, None),),
        ),
        Panel(
            "stat",
            "Duplicate tool executions",
            "Tool calls that ran a second time for one idempotency key in the time range.",
            "short",
            (Query(f"sum({increase_in_range(sel(names.TOOL_DUPLICATE_EXECUTIONS))})",
                   instant=True),),
            width=4,
            height=4,
            watch=("tool_duplicate_execution",),
        ),
        Panel(
            "stat",
            "Lock and tool records without TTL",
            "Lock and tool keys the keyspace sampler found without a TTL: held or blocked "
            "forever, and never freed by volatile-* eviction.",
            "short",
            (Query(f"sum({no_ttl})"),),
            width=4,
            height=4,
            watch=("records_without_ttl",),
        ),
    )  # fmt: skip
    locks = (
        Panel(
            "timeseries",
            "Lock acquisitions, contention and timeouts",
            "Per lock and second: acquisitions, acquisitions whose first attempt found the lock "
            "held (contended), and waiters that gave up (timeouts).",
            "ops",
            (
                Query(_by(lock, rate(sel(names.LOCK_ACQUISITIONS))), lock_legend + " acquired"),
                Query(_by(lock, rate(sel(names.LOCK_CONTENDED))), lock_legend + " contended"),
                Query(_by(lock, rate(sel(names.LOCK_TIMEOUTS))), lock_legend + " timed out"),
            ),
            width=8,
            watch=("lock_timeouts",),
            steps=(Step(OK_COLOR, None),),
        ),
        Panel(
            "timeseries",
            "Lock contention",
            "Share of acquisitions per lock that had to wait; the line is the "
            "AgentLockContentionHigh threshold.",
            "percentunit",
            (Query(f"{_by(lock, rate(sel(names.LOCK_CONTENDED)))} / "
                   f"{_by(lock, rate(sel(names.LOCK_ACQUISITIONS)))}", lock_legend),),
            width=8,
            watch=("lock_contention",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Lock wait",
            "99th and 50th percentile time an acquisition waited for its lock; the line is the "
            "AgentLockWaitHigh threshold (p99).",
            "s",
            (
                Query(_quantile(0.99, names.LOCK_WAIT, lock), lock_legend + " p99"),
                Query(_quantile(0.5, names.LOCK_WAIT, lock), lock_legend + " p50"),
            ),
            width=8,
            watch=("lock_wait_p99",),
            minimum=0,
        ),
    )  # fmt: skip
    holders = (
        Panel(
            "bargauge",
            "Oldest holder's share of lock TTL",
            "How much of its TTL the oldest holder of each lock has used: past the "
            "AgentLockHeldNearTTL threshold the lock is about to expire under its holder.",
            "percentunit",
            (Query(f"{sel(names.LOCK_OLDEST_HELD)} / {sel(names.LOCK_TTL)}", lock_legend,
                   empty_while_healthy=ONLY_WHILE_HELD),),
            width=8,
            watch=("lock_held_ttl_share",),
            minimum=0,
            maximum=1,
        ),
        Panel(
            "timeseries",
            "Locks lost",
            "Per lock and second: releases that found the lock no longer theirs.",
            "ops",
            (Query(_by(lock, rate(sel(names.LOCKS_LOST))), lock_legend),),
            width=8,
            watch=("lock_lost",),
            steps=(Step(OK_COLOR, None),),
        ),
        Panel(
            "timeseries",
            "Turn latency",
            "95th and 50th percentile duration of a user turn across the fleet "
            f"({names.TURN_DURATION}), lock waits included.",
            "s",
            (
                Query(_quantile(0.95, names.TURN_DURATION, None), "p95"),
                Query(_quantile(0.5, names.TURN_DURATION, None), "p50"),
            ),
            width=8,
            minimum=0,
        ),
    )  # fmt: skip
    tools = (
        Panel(
            "timeseries",
            "Tool executions",
            "Tool calls finished per second, by tool and final status.",
            "ops",
            (Query(f"sum by ({tool}, {status}) ({rate(sel(names.TOOL_EXECUTIONS))})",
                   tool_legend + " {{" + status + "}}"),),
            width=8,
        ),
        Panel(
            "timeseries",
            "Duplicate calls per execution",
            "Suppressed duplicate calls (replays of a finished record) per execution, per tool; "
            "the line is the AgentToolDuplicateCallsHigh threshold (a retry storm).",
            "percentunit",
            (Query(f"{_by(tool, rate(sel(names.TOOL_DUPLICATES_SUPPRESSED)))} / "
                   f"{_by(tool, rate(sel(names.TOOL_EXECUTIONS)))}", tool_legend),),
            width=8,
            watch=("tool_duplicate_calls",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Tool claim faults",
            "Per tool and second: duplicate executions, reclaims of calls past their "
            "in-progress deadline, claims lost by their first holder, retries refused while "
            "in progress, and arguments that did not match the record (fingerprint).",
            "ops",
            (
                Query(_by(tool, rate(sel(names.TOOL_DUPLICATE_EXECUTIONS))),
                      tool_legend + " executed twice"),
                Query(_by(tool, rate(sel(names.TOOL_RECLAIMS))), tool_legend + " reclaimed"),
                Query(_by(tool, rate(sel(names.TOOL_CLAIMS_LOST))), tool_legend + " claim lost"),
                Query(_by(tool, rate(sel(names.TOOL_IN_PROGRESS_CONFLICTS))),
                      tool_legend + " refused in progress"),
                Query(_by(tool, rate(sel(names.TOOL_FINGERPRINT_MISMATCHES))),
                      tool_legend + " fingerprint mismatch"),
            ),
            width=8,
            watch=("tool_duplicate_execution",),
            steps=(Step(OK_COLOR, None),),
        ),
    )  # fmt: skip
    orphans = (
        Panel(
            "timeseries",
            "Orphaned tool calls by tool",
            "Tool calls in progress whose holder stopped heartbeating (it died mid-call): "
            "whether their side effect happened is unknown, and a retry after the deadline "
            "runs them again (AgentToolOrphaned).",
            "short",
            (Query(queries.orphaned_tool_calls(sel), tool_legend + " {{instance}}"),),
            width=12,
            watch=("tool_orphaned",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Orphaned calls: age and time to reclaim",
            "Per tool: how long ago its oldest orphaned call was claimed, and the seconds until "
            "its soonest orphaned call passes its deadline, when a retry reclaims it and runs "
            "the tool again (at or below 0: a retry would now). Check the external system "
            "before then.",
            "s",
            (
                Query(f"max by ({tool}) ({sel(names.TOOL_ORPHAN_OLDEST)})",
                      tool_legend + " orphaned for", empty_while_healthy=ONLY_WHILE_ORPHANED),
                Query(f"min by ({tool}) ({sel(names.TOOL_ORPHAN_RECLAIM)})",
                      tool_legend + " reclaimable in", empty_while_healthy=ONLY_WHILE_ORPHANED),
            ),
            width=12,
            steps=(Step(OK_COLOR, None),),
        ),
    )  # fmt: skip
    records = (
        Panel(
            "timeseries",
            "Oldest tool call in progress",
            "Age of the oldest in-progress tool record; past the AgentToolStuckInProgress "
            "threshold its holder died or hangs and retries are being refused.",
            "s",
            (Query(f"max by (instance) ({sel(names.TOOL_OLDEST_IN_PROGRESS)})", "{{instance}}"),),
            width=12,
            watch=("tool_stuck_in_progress",),
            minimum=0,
        ),
        Panel(
            "bargauge",
            "Keys without TTL",
            "Keys the budgeted keyspace sampler found without a TTL, per key class, in its last "
            "full pass (how old: Keyspace sampler age, below). Locks and tool records must "
            "have one: without it they are held or blocked forever.",
            "short",
            (Query(f"sum by ({names.LABEL_KEY_CLASS}) ({sel(names.KEYS_WITHOUT_TTL)})",
                   "{{" + names.LABEL_KEY_CLASS + "}}"),),
            width=6,
            watch=("records_without_ttl",),
            minimum=0,
        ),
        Panel(
            "table",
            "Schema errors",
            "Keys in the namespace the keyspace sampler could not read as the state schema, "
            "per kind: foreign, wrong type, missing TTL, unparsable (how old: Keyspace sampler "
            "age, below).",
            "short",
            (
                Query(f"sum by ({names.LABEL_KIND}) ({sel(names.SCHEMA_ERRORS)})",
                      instant=True, table=True),
            ),
            width=6,
            steps=(Step(OK_COLOR, None),),
            hide_columns=("Time",),
        ),
    )  # fmt: skip
    sampler = (
        Panel(
            "table",
            "Schema version",
            f"The state schema version the agents wrote into each Redis ({names.SCHEMA_INFO}, "
            "docs/schema.md). absent: no agent has written to this Redis and namespace yet, so "
            "every fleet figure here is empty or zero, not healthy.",
            "none",
            (
                Query(f"max by (instance, {version}) ({sel(names.SCHEMA_INFO)})",
                      instant=True, table=True),
            ),
            width=12,
            steps=(Step(OK_COLOR, None),),
            hide_columns=("Time", "Value"),
        ),
        Panel(
            "timeseries",
            "Keyspace sampler age",
            "Seconds since the background keyspace sampler finished the pass that keys without "
            "TTL and schema errors come from. It climbs to about --sample-interval (times the "
            "cycles a pass needs when the namespace holds more keys than --sample-budget) and "
            "drops back when a pass ends; a line that keeps climbing means the sampler is stuck "
            "or cannot reach Redis, and those figures are stale. No series before the first "
            "pass ends, or on Cluster targets (not sampled yet).",
            "s",
            (Query(sel(names.SAMPLER_AGE), "{{instance}}"),),
            width=12,
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
    )  # fmt: skip
    return DashboardSpec(
        uid=DASHBOARD_LOCKS_TOOLS,
        title="memorywatch / Locks and tools",
        description="Session and tool locks, idempotent tool calls and the turn latency "
        "they add up to.",
        rows=(stats, locks, holders, tools, orphans, records, sampler),
    )
