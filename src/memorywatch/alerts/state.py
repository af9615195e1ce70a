"""Sessions and state: does every agent find the memory of the session it serves."""

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
        ),
    )
