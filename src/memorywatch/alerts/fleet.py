"""Agent instances and queues: is there enough ready capacity behind the load balancer.

Also the recording rules an autoscaler reads (queue depth per ready instance, Redis connection
count, turn latency p95)."""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts._build import WINDOW, above_probe, alert, condition_probe, num
from memorywatch.alerts.model import (
    DASHBOARD_OVERVIEW,
    AlertsConfig,
    Probe,
    RecordingRule,
    RuleGroup,
    constant,
    gauge,
    series_selector,
)

QUEUE = "turns"
READY = 4

RECORD_QUEUE_PER_READY: str = "memorywatch:queue_length:per_ready_instance"
RECORD_REDIS_CLIENTS: str = f"memorywatch:{names.REDIS_CONNECTED_CLIENTS}:sum"
RECORD_TURN_P95: str = "memorywatch:turn_duration_seconds:p95"


def recording_rules() -> tuple[RecordingRule, ...]:
    return (
        RecordingRule(RECORD_QUEUE_PER_READY, queries.queue_per_ready()),
        RecordingRule(
            RECORD_REDIS_CLIENTS,
            f"sum without ({names.LABEL_NODE}) ({names.REDIS_CONNECTED_CLIENTS})",
        ),
        RecordingRule(
            RECORD_TURN_P95,
            f"histogram_quantile(0.95, rate({names.TURN_DURATION}_bucket[{WINDOW}]))",
        ),
    )


def group(cfg: AlertsConfig) -> RuleGroup:
    state = names.LABEL_STATE
    not_ready = cfg.t("instances_not_ready")
    backlog = cfg.t("queue_per_ready_instance")
    queue = series_selector(names.QUEUE_LENGTH, **{names.LABEL_QUEUE: QUEUE})
    ready = series_selector(names.AGENT_INSTANCES, **{state: names.STATE_READY})
    fire_depth = (backlog.number() * 2 if backlog.number() else 1) * READY
    return RuleGroup(
        "memorywatch-fleet",
        records=recording_rules(),
        alerts=(
            alert(
                cfg,
                "instances_not_ready",
                expr=f'{names.AGENT_INSTANCES}{{{state}="{names.STATE_NOT_READY}"}} > {num(not_ready.number())}',
                summary="Agent instances are not ready.",
                description="$value agent instances have been not ready (or have stopped "
                "heartbeating) for a while.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=above_probe(
                    series_selector(names.AGENT_INSTANCES, **{state: names.STATE_NOT_READY}),
                    not_ready,
                    not_ready.number() + 1,
                    {state: names.STATE_NOT_READY},
                ),
            ),
            alert(
                cfg,
                "no_ready_instances",
                expr=f'{names.AGENT_INSTANCES}{{{state}="{names.STATE_READY}"}} == 0',
                summary="No agent instance is ready.",
                description="No agent instance reported by $labels.instance is ready: every "
                "request behind the load balancer fails.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=condition_probe(ready, 3, 0, {state: names.STATE_READY}),
            ),
            alert(
                cfg,
                "queue_per_ready_instance",
                expr=f"{queries.queue_per_ready()} > {num(backlog.number())}",
                summary="Agent work is queueing up faster than instances take it.",
                description="Queue $labels.queue holds $value entries per ready agent instance "
                f"(threshold {backlog.human_value()}).",
                value_format="number",
                dashboard=DASHBOARD_OVERVIEW,
                probe=Probe(
                    fire={queue: gauge(0, fire_depth), ready: gauge(READY, READY)},
                    quiet={queue: gauge(0, backlog.number() * READY), ready: gauge(READY, READY)},
                    labels={names.LABEL_QUEUE: QUEUE},
                    value=constant(fire_depth / READY),
                    quiet_value=constant(backlog.number()),
                ),
            ),
        ),
    )
