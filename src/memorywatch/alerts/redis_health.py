"""Redis availability: is the store that holds every agent's memory answering and accepting writes."""

from __future__ import annotations

from memorywatch import names
from memorywatch.alerts._build import WINDOW, alert, any_increase_probe, condition_probe, num
from memorywatch.alerts.model import DASHBOARD_OVERVIEW, AlertsConfig, RuleGroup

WRITE_ERRORS = ("OOM", "READONLY", "MISCONF")


def group(cfg: AlertsConfig) -> RuleGroup:
    errors = "|".join(WRITE_ERRORS)
    # INFO errorstats has no line for an error until it first happens: the second branch sees
    # a series that is new within the window, which increase() cannot.
    selector = f'{names.REDIS_ERRORS}{{{names.LABEL_ERR}=~"{errors}"}}'
    limit = num(cfg.t("write_errors").number())
    return RuleGroup(
        "memorywatch-redis-health",
        alerts=(
            alert(
                cfg,
                "redis_down",
                expr=f"{names.REDIS_UP} == 0",
                summary="Redis holding agent memory is unreachable.",
                description="The exporter at $labels.instance cannot reach its Redis: agents "
                "can neither load history nor take locks.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=condition_probe(names.REDIS_UP, 1, 0),
            ),
            alert(
                cfg,
                "write_errors",
                expr=f"(increase({selector}[{WINDOW}]) > {limit}) or "
                f"(({selector} unless {selector} offset {WINDOW}) > {limit})",
                summary="Redis is rejecting agent writes.",
                description="Redis $labels.instance answered $value commands with $labels.err "
                "in the last 5 minutes: those history, lock or tool writes were lost.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=any_increase_probe(
                    cfg, "write_errors", names.REDIS_ERRORS, {names.LABEL_ERR: "OOM"}
                ),
            ),
        ),
    )
