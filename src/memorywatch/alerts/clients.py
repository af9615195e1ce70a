"""Clients and connection pools: can every agent instance get a connection to its memory."""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts._build import WINDOW, alert, any_increase_probe, fire_level, num
from memorywatch.alerts.model import (
    DASHBOARD_OVERVIEW,
    AlertRule,
    AlertsConfig,
    Probe,
    RuleGroup,
    constant,
    gauge,
    series_selector,
)

MAXCLIENTS = 1000
POOL_MAX = 100


def _clients(cfg: AlertsConfig, threshold: str, stricter: str | None) -> AlertRule:
    t = cfg.t(threshold)
    level = round(fire_level(cfg, threshold, stricter) * MAXCLIENTS)
    clients, maxclients = names.REDIS_CONNECTED_CLIENTS, names.REDIS_CONFIG_MAXCLIENTS
    return alert(
        cfg,
        threshold,
        expr=f"{queries.clients_ratio()} > {num(t.number())}",
        summary="Redis is running out of client connections.",
        description=f"Redis $labels.instance has $value of maxclients in use (threshold "
        f"{t.human_value()}); new agent instances will be refused.",
        value_format="percentage",
        dashboard=DASHBOARD_OVERVIEW,
        probe=Probe(
            fire={clients: gauge(10, level), maxclients: gauge(MAXCLIENTS, MAXCLIENTS)},
            quiet={clients: gauge(10, round(t.number() * MAXCLIENTS)),
                   maxclients: gauge(MAXCLIENTS, MAXCLIENTS)},
            labels={},
            value=constant(level / MAXCLIENTS),
            quiet_value=constant(round(t.number() * MAXCLIENTS) / MAXCLIENTS),
        ),
    )  # fmt: skip


def group(cfg: AlertsConfig) -> RuleGroup:
    pool_t = cfg.t("client_pool_used")
    pool_level = round(fire_level(cfg, "client_pool_used") * POOL_MAX)
    use_max = series_selector(names.AGENT_POOL_USE_MAX)
    # the reported sum rising by a counter's steps reads as increase() of that counter would
    timeouts = any_increase_probe(
        cfg, "client_pool_timeouts", names.AGENT_POOL_TIMEOUTS_REPORTED, {}
    )
    return RuleGroup(
        "memorywatch-clients",
        alerts=(
            _clients(cfg, "clients_warning", "clients_critical"),
            _clients(cfg, "clients_critical", None),
            alert(
                cfg,
                "rejected_connections",
                expr=f"increase({names.REDIS_REJECTED_CONNECTIONS}[{WINDOW}])"
                f" > {num(cfg.t('rejected_connections').number())}",
                summary="Redis is rejecting connections.",
                description="Redis $labels.instance rejected $value connections in the last "
                "5 minutes (maxclients reached): those agents cannot reach their memory.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=any_increase_probe(
                    cfg, "rejected_connections", names.REDIS_REJECTED_CONNECTIONS, {}
                ),
            ),
            alert(
                cfg,
                "client_pool_used",
                expr=f"{queries.pool_ratio()} > {num(pool_t.number())}",
                summary="An agent instance's Redis connection pool is nearly exhausted.",
                description="The most used agent Redis connection pool behind "
                f"$labels.instance is at $value (threshold {pool_t.human_value()}); "
                f"{names.AGENT_POOL_TOP_USE} names the instances.",
                value_format="percentage",
                dashboard=DASHBOARD_OVERVIEW,
                probe=Probe(
                    fire={use_max: gauge(10 / POOL_MAX, pool_level / POOL_MAX)},
                    quiet={
                        use_max: gauge(10 / POOL_MAX, round(pool_t.number() * POOL_MAX) / POOL_MAX)
                    },
                    labels={},
                    value=constant(pool_level / POOL_MAX),
                    quiet_value=constant(round(pool_t.number() * POOL_MAX) / POOL_MAX),
                ),
            ),
            alert(
                cfg,
                "client_pool_timeouts",
                expr=f"{queries.pool_timeouts_new(WINDOW)}"
                f" > {num(cfg.t('client_pool_timeouts').number())}",
                summary="Agent turns are failing waiting for a Redis connection.",
                description="Live agent instances behind $labels.instance reported $value "
                "pool timeouts in the last 5 minutes (waits for a pooled Redis connection); "
                f"{names.AGENT_POOL_TIMEOUTS_INSTANCES} counts the instances that had any.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=Probe(
                    fire=timeouts.fire,
                    quiet=timeouts.quiet,
                    labels={},
                    value=timeouts.value,
                    quiet_value=timeouts.quiet_value,
                ),
            ),
        ),
    )
