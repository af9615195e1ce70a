"""Is Redis there, does it take writes, and did it come back empty (runbooks RedisDown,
RedisWriteErrors, RedisRestartedWithoutPersistence)."""

from __future__ import annotations

from memorywatch.diagnose.checks._util import stat
from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import CannotTell, Finding, Hypothesis
from memorywatch.thresholds import Thresholds


def loading(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    if node.info.get("loading") != "1":
        return None
    return Finding(
        "Redis is loading its dataset and refuses commands until it is done.",
        (f"loading 1, {node.number('loading_loaded_perc'):.0f} % loaded",),
    )


WRITE_ERRORS = ("OOM", "READONLY", "MISCONF")
"""The error replies that are a refused write (INFO errorstats, Redis 6.2+)."""
WHY = {
    "OOM": "maxmemory reached under noeviction (or nothing evictable)",
    "READONLY": "a write sent to a replica (a stale master address after a failover)",
    "MISCONF": "the last RDB save failed and stop-writes-on-bgsave-error is on",
}


def write_errors(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    if not any(key.startswith("errorstat_") for key in node.info) and "total_error_replies" not in (
        node.info
    ):
        raise CannotTell("INFO holds no errorstats section (Redis older than 6.2?)")
    after = facts.window.info if facts.window is not None else node.info
    totals = {err: stat(after.get(f"errorstat_{err}"), "count") for err in WRITE_ERRORS}
    if not any(totals.values()):
        return None
    grew = {
        err: totals[err] - stat(node.info.get(f"errorstat_{err}"), "count") for err in WRITE_ERRORS
    }
    evidence = [
        f"{err} replies: {totals[err]:,.0f} since the restart"
        + (f", {grew[err]:,.0f} in the last {facts.window.seconds:.1f} s" if facts.window else "")
        + f" ({WHY[err]})"
        for err in WRITE_ERRORS
        if totals[err]
    ]
    now = sum(max(0.0, g) for g in grew.values())
    return Finding(
        "Redis refuses writes: agents' history, lock and tool-record writes fail."
        if now
        else "Redis refused writes since its restart (none during this run).",
        tuple(evidence),
        excess=(2.0 + now) if now else 1.0,
    )


HYPOTHESES = (
    Hypothesis(
        "RedisDown",
        "Does Redis answer commands?",
        "Start or fail over Redis; agents cannot serve a turn until it answers.",
        loading,
    ),
    Hypothesis(
        "RedisRestartedWithoutPersistence",
        "Did the master restart without RDB or AOF (every conversation on it gone)?",
        "Enable AOF (appendonly yes) or RDB snapshots, and never let an empty master "
        "resync its replicas: promote a replica instead of restarting a master with no data.",
        None,  # a first start and a restart look alike from INFO: the exporter saw which
    ),
    Hypothesis(
        "RedisMasterChanged",
        "Did the master change (a failover, a restart with a new run_id)?",
        "Check what the old master had not replicated (durable-mode refusals, lost turns) and "
        "why it failed; agents reconnect by themselves.",
        None,
    ),
    Hypothesis(
        "RedisWriteErrors",
        "Does Redis refuse writes (OOM, READONLY, MISCONF)?",
        "OOM: raise maxmemory or free memory (keys without TTL); READONLY: point the agents at "
        "the new master (Sentinel or Cluster URL); MISCONF: fix the failing save (disk, "
        "permissions), then BGSAVE.",
        write_errors,
    ),
)
