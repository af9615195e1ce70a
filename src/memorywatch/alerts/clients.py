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
INSTANCE_ID = "agent-1"


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
    pool = names.AGENT_POOL_CONNECTIONS
    state, iid = names.LABEL_STATE, names.LABEL_INSTANCE_ID
    pool_t = cfg.t("client_pool_used")
    pool_level = round(fire_level(cfg, "client_pool_used") * POOL_MAX)
    used = series_selector(pool, **{iid: INSTANCE_ID, state: names.POOL_USED})
    pool_max = series_selector(pool, **{iid: INSTANCE_ID, state: names.POOL_MAX})
    timeouts = any_increase_probe(
        cfg, "client_pool_timeouts", names.AGENT_POOL_TIMEOUTS, {iid: INSTANCE_ID}
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
                description="Agent instance $labels.instance_id uses $value of its Redis "
                f"connection pool (threshold {pool_t.human_value()}).",
                value_format="percentage",
                dashboard=DASHBOARD_OVERVIEW,
                probe=Probe(
                    fire={used: gauge(10, pool_level), pool_max: gauge(POOL_MAX, POOL_MAX)},
                    quiet={
                        used: gauge(10, round(pool_t.number() * POOL_MAX)),
                        pool_max: gauge(POOL_MAX, POOL_MAX),
                    },
                    labels={iid: INSTANCE_ID},
                    value=constant(pool_level / POOL_MAX),
                    quiet_value=constant(round(pool_t.number() * POOL_MAX) / POOL_MAX),
                ),
            ),
            alert(
                cfg,
                "client_pool_timeouts",
                expr=f"sum without ({iid}) (increase({names.AGENT_POOL_TIMEOUTS}[{WINDOW}]))"
                f" > {num(cfg.t('client_pool_timeouts').number())}",
                summary="Agent turns are failing waiting for a Redis connection.",
                description="Agents reported by $labels.instance timed out $value times in the "
                "last 5 minutes waiting for a pooled Redis connection.",
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
