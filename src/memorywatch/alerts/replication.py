"""Replication: would a failover keep the fleet's memory, is there a replica to fail over to, and
did the master just change."""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts._build import above_probe, alert, condition_probe, fire_level, num
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

REPLICA = {names.LABEL_SLAVE_IP: "10.0.0.2", names.LABEL_SLAVE_PORT: "6379"}
NODE = {names.LABEL_NODE: "10.0.0.2:6379"}
"""A node of a Sentinel or Cluster target (standalone targets have no node label)."""


def _lag(cfg: AlertsConfig, threshold: str, stricter: str | None) -> AlertRule:
    t = cfg.t(threshold)
    labels = {**REPLICA, names.LABEL_SLAVE_STATE: "online"}
    level = fire_level(cfg, threshold, stricter) if stricter else t.number() * 1.5
    return alert(
        cfg,
        threshold,
        expr=f"{names.REDIS_SLAVE_LAG_SECONDS} > {num(t.number())}",
        summary="A Redis replica is behind its master.",
        description="Replica $labels.slave_ip:$labels.slave_port of $labels.instance last "
        f"acknowledged replication $value ago (threshold {t.human_value()}).",
        value_format="duration",
        dashboard=DASHBOARD_REDIS,
        probe=above_probe(
            series_selector(names.REDIS_SLAVE_LAG_SECONDS, **labels), t, level, labels, healthy=1
        ),
    )


def _info(role: str, run_id: str, node: str = NODE[names.LABEL_NODE]) -> str:
    return series_selector(
        names.REDIS_INSTANCE_INFO,
        **{names.LABEL_NODE: node, names.LABEL_ROLE: role, names.LABEL_RUN_ID: run_id},
    )


def _master_changed(cfg: AlertsConfig) -> AlertRule:
    """A node that is a master now and, within the window, was a replica (promoted by
    Sentinel, a Cluster failover, REPLICAOF NO ONE or FAILOVER) or ran as another process
    (a new run_id: the master restarted, or another process answers at its address)."""
    window = format_duration(int(cfg.t("master_changed_window").number()))
    by = f"instance, job, {names.LABEL_NODE}"
    info = names.REDIS_INSTANCE_INFO
    replica = series_selector(info, **{names.LABEL_ROLE: names.ROLE_SLAVE})
    promoted = f"max_over_time({replica}[{window}])"
    restarted = (
        f"count by ({by}) (count by ({by}, {names.LABEL_RUN_ID}) "
        f"(max_over_time({info}[{window}]))) > 1"
    )
    return alert(
        cfg,
        "master_changed",
        expr=f"count by ({by}) ({queries.masters()} and on({by}) ({promoted} or ({restarted})))",
        summary="The master of a Redis replication group changed.",
        description=f"Redis $labels.instance has a new master within the last {window}: a "
        "failover promoted a replica, a replica was detached, or the master restarted. Writes "
        "it had not replicated are lost; durable-mode writes may have been refused meanwhile.",
        value_format="count",
        dashboard=DASHBOARD_REDIS,
        probe=Probe(
            fire={_info(names.ROLE_SLAVE, "a"): gauge(1, 1),
                  _info(names.ROLE_MASTER, "a"): Series(None, 1)},
            quiet={_info(names.ROLE_MASTER, "a"): gauge(1, 1),
                   _info(names.ROLE_SLAVE, "b", "10.0.0.3:6379"): gauge(1, 1)},
            labels=NODE,
            value=constant(1),
            quiet_value=constant(1),
        ),
    )  # fmt: skip


def group(cfg: AlertsConfig) -> RuleGroup:
    lag_bytes = cfg.t("replica_lag_bytes")
    lookback = format_duration(int(cfg.t("replica_missing_lookback").number()))
    slaves = names.REDIS_CONNECTED_SLAVES
    return RuleGroup(
        "memorywatch-replication",
        alerts=(
            alert(
                cfg,
                "replication_link_down",
                expr=f"{names.REDIS_MASTER_LINK_UP} == 0",
                summary="A Redis replica lost its master.",
                description="Replica $labels.instance has no link to its master: it serves "
                "stale agent memory and cannot take over on failover.",
                value_format="count",
                dashboard=DASHBOARD_REDIS,
                probe=condition_probe(names.REDIS_MASTER_LINK_UP, 1, 0),
            ),
            _lag(cfg, "replica_lag_warning", "replica_lag_critical"),
            _lag(cfg, "replica_lag_critical", None),
            alert(
                cfg,
                "replica_lag_bytes",
                expr=f"{names.REPLICA_LAG_BYTES} > {num(lag_bytes.number())}",
                summary="A Redis replica is far behind its master in bytes.",
                description="Replica $labels.slave_ip:$labels.slave_port of $labels.instance is "
                "$value behind: a failover now loses that much agent state.",
                value_format="bytes",
                dashboard=DASHBOARD_REDIS,
                probe=above_probe(
                    series_selector(names.REPLICA_LAG_BYTES, **REPLICA),
                    lag_bytes,
                    fire_level(cfg, "replica_lag_bytes"),
                    REPLICA,
                ),
            ),
            alert(
                cfg,
                "replica_missing",
                expr=f"{slaves} < max_over_time({slaves}[{lookback}])",
                summary="A Redis master has fewer replicas than before.",
                description=f"Redis master $labels.instance has $value connected replicas, fewer "
                f"than at some point in the last {lookback}.",
                value_format="count",
                dashboard=DASHBOARD_REDIS,
                probe=Probe(
                    fire={slaves: gauge(2, 1)},
                    quiet={slaves: gauge(2, 2)},
                    labels={},
                    value=constant(1),
                    quiet_value=constant(2),
                ),
            ),
            _master_changed(cfg),
        ),
    )
