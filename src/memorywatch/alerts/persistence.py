"""Persistence: would a Redis restart keep the fleet's memory."""

from __future__ import annotations

from memorywatch import names
from memorywatch.alerts._build import alert
from memorywatch.alerts.model import (
    DASHBOARD_REDIS,
    AlertsConfig,
    Probe,
    RuleGroup,
    constant,
    gauge,
)


def group(cfg: AlertsConfig) -> RuleGroup:
    rdb, aof = names.REDIS_RDB_LAST_BGSAVE_STATUS, names.REDIS_AOF_LAST_WRITE_STATUS
    return RuleGroup(
        "memorywatch-persistence",
        alerts=(
            alert(
                cfg,
                "persistence_failing",
                expr=f"({rdb} == 0) or ({aof} == 0)",
                summary="Redis cannot persist agent memory to disk.",
                description="The last RDB save or AOF write of Redis $labels.instance failed: a "
                "restart now loses every turn since the last good save.",
                value_format="count",
                dashboard=DASHBOARD_REDIS,
                probe=Probe(
                    fire={rdb: gauge(1, 0), aof: gauge(1, 1)},
                    quiet={rdb: gauge(1, 1), aof: gauge(1, 1)},
                    labels={},
                    value=constant(0),
                    quiet_value=constant(1),
                ),
            ),
        ),
    )
