"""Replication: would a failover keep the fleet's memory, and is there a replica to fail over to."""

from __future__ import annotations

from memorywatch import names
from memorywatch.alerts._build import above_probe, alert, condition_probe, fire_level, num
from memorywatch.alerts.model import (
    DASHBOARD_REDIS,
    AlertRule,
    AlertsConfig,
    Probe,
    RuleGroup,
    constant,
    gauge,
    series_selector,
)
from memorywatch.thresholds import format_duration

REPLICA = {names.LABEL_SLAVE_IP: "10.0.0.2", names.LABEL_SLAVE_PORT: "6379"}


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
        ),
    )
