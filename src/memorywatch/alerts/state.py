"""Sessions and state: does every agent find the memory of the session it serves, and are its
durable writes kept on as many replicas as it asked for."""

from __future__ import annotations

from memorywatch import names, schema
from memorywatch.alerts._build import WINDOW, alert, any_increase_probe, num
from memorywatch.alerts.model import DASHBOARD_OVERVIEW, AlertsConfig, RuleGroup


def group(cfg: AlertsConfig) -> RuleGroup:
    return RuleGroup(
        "memorywatch-state",
        alerts=(
            alert(
                cfg,
                "state_misses",
                expr=f"increase({names.STATE_MISSES}[{WINDOW}])"
                f" > {num(cfg.t('state_misses').number())}",
                summary="Agents lost the memory of live sessions.",
                description="Agents found no $labels.kind for a live session $value times in "
                "the last 5 minutes: users were forgotten mid-conversation.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=any_increase_probe(
                    cfg, "state_misses", names.STATE_MISSES, {names.LABEL_KIND: schema.MISS_HISTORY}
                ),
            ),
            alert(
                cfg,
                "state_not_durable",
                expr=f"increase({names.STATE_NOT_DURABLE}[{WINDOW}])"
                f" > {num(cfg.t('state_not_durable').number())}",
                summary="Agents refused writes that replicas did not acknowledge.",
                description="Durable mode refused $value $labels.op writes in the last 5 "
                "minutes: fewer replicas than min_replicas acknowledged them in time (a replica "
                "down, frozen or lagging, or min_replicas above the replicas there are), and "
                "users saw those turns fail.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=any_increase_probe(
                    cfg,
                    "state_not_durable",
                    names.STATE_NOT_DURABLE,
                    {names.LABEL_OP: schema.DURABLE_HISTORY_APPEND},
                ),
            ),
        ),
    )
