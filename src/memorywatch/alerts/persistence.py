"""Persistence: would a Redis restart keep the fleet's memory, and did one just lose it."""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts._build import alert
from memorywatch.alerts.model import (
    DASHBOARD_REDIS,
    AlertRule,
    AlertsConfig,
    Probe,
    RuleGroup,
    Series,
    constant,
    gauge,
    series_selector,
)
from memorywatch.thresholds import format_duration

NODE = {names.LABEL_NODE: "10.0.0.1:6379"}
RESTARTED_UPTIME = 60
"""The probe's uptime right after the restart, in seconds."""


def _restarted_without_persistence(cfg: AlertsConfig) -> AlertRule:
    """A master whose uptime went down within the window (a restart the exporter saw) and
    that has neither AOF nor RDB snapshots: it started empty. The value is its uptime."""
    window = format_duration(int(cfg.t("restarted_without_persistence_window").number()))
    on = f"on(instance, job, {names.LABEL_NODE})"
    uptime = names.REDIS_UPTIME
    step = cfg.test_interval

    def node(metric: str, **labels: str) -> str:
        return series_selector(metric, **NODE, **labels)

    master = node(names.REDIS_INSTANCE_INFO, **{names.LABEL_ROLE: names.ROLE_MASTER})
    restarted = {
        node(uptime): Series(86400, RESTARTED_UPTIME, step),
        master: gauge(1, 1),
        node(names.REDIS_AOF_ENABLED): gauge(0, 0),
    }
    return alert(
        cfg,
        "restarted_without_persistence",
        expr=f"{uptime} and {on} (resets({uptime}[{window}]) > 0) "
        f"and {on} {queries.masters()} and {on} ({queries.without_persistence()})",
        summary="A Redis master restarted without persistence and lost its data.",
        description="Redis master $labels.instance restarted $value ago with neither RDB "
        "snapshots nor AOF: it started empty, every conversation, lock and tool record on it "
        "is gone, and its replicas resync to the empty dataset.",
        value_format="duration",
        dashboard=DASHBOARD_REDIS,
        probe=Probe(
            fire={**restarted, node(names.RDB_SAVE_CONFIGURED): gauge(0, 0)},
            quiet={**restarted, node(names.RDB_SAVE_CONFIGURED): gauge(1, 1)},
            labels=NODE,
            value=lambda steps, interval: RESTARTED_UPTIME + steps * interval,
            quiet_value=lambda steps, interval: RESTARTED_UPTIME + steps * interval,
        ),
    )  # fmt: skip


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
            _restarted_without_persistence(cfg),
        ),
    )
