"""The exporter itself: every other alert is silent when it is down or cannot read Redis."""

from __future__ import annotations

from memorywatch import names
from memorywatch.alerts._build import WINDOW, alert, any_increase_probe, condition_probe, num
from memorywatch.alerts.model import DASHBOARD_OVERVIEW, AlertsConfig, RuleGroup

UP = "up"


def group(cfg: AlertsConfig) -> RuleGroup:
    return RuleGroup(
        "memorywatch-exporter",
        alerts=(
            alert(
                cfg,
                "exporter_down",
                expr=f'{UP}{{job="{cfg.exporter_job}"}} == 0',
                summary="Prometheus cannot scrape the memorywatch exporter.",
                description="Target $labels.instance of job $labels.job is down: Redis and "
                "agent-fleet alerts for it cannot fire.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=condition_probe(UP, 1, 0),
            ),
            alert(
                cfg,
                "exporter_scrape_errors",
                expr=f"increase({names.SCRAPE_ERRORS}[{WINDOW}])"
                f" > {num(cfg.t('exporter_scrape_errors').number())}",
                summary="The memorywatch exporter keeps failing to read Redis.",
                description="Exporter $labels.instance failed $value scrapes of Redis in the "
                "last 5 minutes with reason $labels.reason.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=any_increase_probe(
                    cfg, "exporter_scrape_errors", names.SCRAPE_ERRORS, {names.LABEL_REASON: "auth"}
                ),
            ),
        ),
    )
