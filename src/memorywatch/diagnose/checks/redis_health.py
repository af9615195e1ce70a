"""Is Redis there, and did it come back empty (runbooks RedisDown, RedisRestartedWithoutPersistence)."""

from __future__ import annotations

from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import Finding, Hypothesis
from memorywatch.thresholds import Thresholds


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
        None,  # a first start and a restart look alike from INFO: the exporter saw which
    ),
    Hypothesis(
        "RedisMasterChanged",
        "Did the master change (a failover, a restart with a new run_id)?",
        "Check what the old master had not replicated (durable-mode refusals, lost turns) and "
        "why it failed; agents reconnect by themselves.",
        None,
    ),
)
