"""Is Redis there, and did it come back empty (runbooks RedisDown, RedisRestartedWithoutPersistence)."""

from __future__ import annotations

from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import Finding, Hypothesis
from memorywatch.thresholds import Thresholds


def restarted_empty(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    window = th["restarted_without_persistence_window"].number()
    uptime = node.number("uptime_in_seconds")
    save = node.config.get("save")
    if node.role != "master" or uptime >= window or node.number("aof_enabled") or save != "":
        return None
    return Finding(
        "The master restarted with neither RDB snapshots nor AOF: it came back empty.",
        (
            f'uptime {uptime:,.0f} s (< {window:,.0f} s); save "" and appendonly no',
            f"{_keys(node.info):,.0f} keys in db0 now",
        ),
    )


def _keys(info: object) -> float:
    db0 = info.get("db0") if isinstance(info, dict) else None
    return float(db0.get("keys", 0)) if isinstance(db0, dict) else 0.0


def loading(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    if node.info.get("loading") != "1":
        return None
    return Finding(
        "Redis is loading its dataset and refuses commands until it is done.",
        (f"loading 1, {node.number('loading_loaded_perc'):.0f} % loaded",),
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
        restarted_empty,
    ),
)
