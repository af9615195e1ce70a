"""Memory and eviction: will Redis keep every history, lock and tool record it was given."""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts._build import (
    WINDOW,
    above_probe,
    alert,
    any_increase_probe,
    condition_probe,
    fire_level,
    num,
)
from memorywatch.alerts.model import (
    DASHBOARD_OVERVIEW,
    DASHBOARD_REDIS,
    ONSET,
    AlertRule,
    AlertsConfig,
    Probe,
    RuleGroup,
    Series,
    constant,
    gauge,
    series_selector,
)

LABEL_MAXMEMORY_POLICY = names.LABEL_MAXMEMORY_POLICY
"""A label of redis_instance_info (redis_exporter)."""
SAFE_POLICY = "noeviction"
PROBE_PROFILE = "openai_agents"
"""Any key profile: the alerts select by class, never by profile."""
MAX_BYTES = 1_000_000_000


def _memory_high(cfg: AlertsConfig, threshold: str, stricter: str | None) -> AlertRule:
    t = cfg.t(threshold)
    level = fire_level(cfg, threshold, stricter)
    used = names.REDIS_MEMORY_USED
    return alert(
        cfg,
        threshold,
        expr=f"{queries.memory_ratio()} > {num(t.number())}",
        summary="Redis memory is close to maxmemory.",
        description=f"Redis $labels.instance uses $value of maxmemory (threshold "
        f"{t.human_value()}); at 100 % writes fail or agent state is evicted.",
        value_format="percentage",
        dashboard=DASHBOARD_REDIS,
        probe=Probe(
            fire={used: gauge(MAX_BYTES / 2, round(level * MAX_BYTES)),
                  names.REDIS_MEMORY_MAX: gauge(MAX_BYTES, MAX_BYTES)},
            quiet={used: gauge(MAX_BYTES / 2, round(t.number() * MAX_BYTES)),
                   names.REDIS_MEMORY_MAX: gauge(MAX_BYTES, MAX_BYTES)},
            labels={},
            value=constant(round(level * MAX_BYTES) / MAX_BYTES),
            quiet_value=constant(round(t.number() * MAX_BYTES) / MAX_BYTES),
        ),
    )  # fmt: skip


FORECAST_WINDOW = "6h"
GROWTH_PER_STEP = 1_000_000


def _forecast(cfg: AlertsConfig) -> AlertRule:
    """predict_linear over 6 h crossing maxmemory within the horizon. The value is today's
    used/max ratio (exact from the samples), not the extrapolated bytes."""
    t = cfg.t("memory_full_forecast")
    horizon = int(t.number())
    used, most = names.REDIS_MEMORY_USED, names.REDIS_MEMORY_MAX
    ahead = horizon // cfg.test_interval
    # A ramp from step 0 whose forecast first passes maxmemory at ONSET (by half a step).
    start = MAX_BYTES - GROWTH_PER_STEP * (ONSET + ahead) + GROWTH_PER_STEP // 2
    flat_high = round(MAX_BYTES * 0.95)
    return alert(
        cfg,
        "memory_full_forecast",
        expr=f"{queries.memory_ratio()} and "
        f"predict_linear({used}[{FORECAST_WINDOW}], {horizon}) > {most} > 0",
        summary="Redis memory will reach maxmemory within hours.",
        description=f"At its growth over the last {FORECAST_WINDOW}, Redis $labels.instance "
        f"(now at $value of maxmemory) reaches maxmemory within {t.human_value()}.",
        value_format="percentage",
        dashboard=DASHBOARD_REDIS,
        probe=Probe(
            fire={used: Series(start, 0, GROWTH_PER_STEP, ramp=True),
                  most: gauge(MAX_BYTES, MAX_BYTES)},
            quiet={used: gauge(flat_high, flat_high), most: gauge(MAX_BYTES, MAX_BYTES)},
            labels={},
            value=lambda steps, _i: (start + GROWTH_PER_STEP * (ONSET + steps)) / MAX_BYTES,
            quiet_value=constant(flat_high / MAX_BYTES),
        ),
    )  # fmt: skip


def group(cfg: AlertsConfig) -> RuleGroup:
    frag = cfg.t("fragmentation_ratio")
    floor = cfg.t("fragmentation_min_memory").number()
    used_enough = {names.REDIS_MEMORY_USED: gauge(floor * 2, floor * 2)}
    unsafe = series_selector(names.REDIS_INSTANCE_INFO, **{LABEL_MAXMEMORY_POLICY: "volatile-lru"})
    safe = series_selector(names.REDIS_INSTANCE_INFO, **{LABEL_MAXMEMORY_POLICY: SAFE_POLICY})
    return RuleGroup(
        "memorywatch-memory",
        alerts=(
            _memory_high(cfg, "memory_used_warning", "memory_used_critical"),
            _memory_high(cfg, "memory_used_critical", None),
            _forecast(cfg),
            alert(
                cfg,
                "maxmemory_not_set",
                expr=f"{names.REDIS_MEMORY_MAX} == 0",
                summary="Redis has no maxmemory limit.",
                description="Redis $labels.instance runs without maxmemory: it grows until the "
                "kernel OOM-kills it and every agent session is lost at once.",
                value_format="bytes",
                dashboard=DASHBOARD_REDIS,
                probe=condition_probe(names.REDIS_MEMORY_MAX, MAX_BYTES, 0),
            ),
            alert(
                cfg,
                "agent_state_evicted",
                expr=f"increase({queries.agent_state_evictions()}[{WINDOW}])"
                f" > {num(cfg.t('agent_state_evicted').number())}",
                summary="Redis evicted agent state.",
                description="Redis $labels.instance evicted $value $labels.key_class keys of "
                "profile $labels.profile in the last 5 minutes: agents will forget sessions, "
                "lose graph state or redo tools.",
                value_format="count",
                dashboard=DASHBOARD_OVERVIEW,
                probe=any_increase_probe(
                    cfg,
                    "agent_state_evicted",
                    names.EVICTED_KEYS,
                    {
                        names.LABEL_PROFILE: PROBE_PROFILE,
                        names.LABEL_KEY_CLASS: names.KEY_CLASS_HISTORY,
                    },
                ),
            ),
            alert(
                cfg,
                "eviction_tracking_disabled",
                expr=f"{names.EVICTION_TRACKING} == 0",
                summary="Evictions of agent state cannot be seen.",
                description="The exporter at $labels.instance receives no keyspace eviction "
                "events, so AgentStateEvicted cannot fire.",
                value_format="count",
                dashboard=DASHBOARD_REDIS,
                probe=condition_probe(names.EVICTION_TRACKING, 1, 0),
            ),
            alert(
                cfg,
                "eviction_policy_unsafe",
                expr=f"count by (instance, job, {names.LABEL_NODE}, {LABEL_MAXMEMORY_POLICY}) "
                f'({names.REDIS_INSTANCE_INFO}{{{LABEL_MAXMEMORY_POLICY}!="{SAFE_POLICY}"}})',
                summary="Redis may evict locks and tool records.",
                description="Redis $labels.instance runs maxmemory-policy "
                "$labels.maxmemory_policy: at maxmemory it evicts keys instead of refusing "
                "writes, and volatile-* policies pick TTL keys (locks, tool records) first.",
                value_format="count",
                dashboard=DASHBOARD_REDIS,
                probe=Probe(
                    fire={unsafe: Series(None, 1)},
                    quiet={safe: Series(None, 1)},
                    labels={LABEL_MAXMEMORY_POLICY: "volatile-lru"},
                    value=constant(1),
                    quiet_value=constant(1),
                ),
            ),
            alert(
                cfg,
                "fragmentation_ratio",
                expr=f"({names.REDIS_MEM_FRAGMENTATION_RATIO} > {num(frag.number())}) "
                f"and ({names.REDIS_MEMORY_USED} > {num(floor)})",
                summary="Redis memory is fragmented.",
                description="Redis $labels.instance uses $value times its data size in RSS; "
                "the difference counts against the host, not maxmemory.",
                value_format="number",
                dashboard=DASHBOARD_REDIS,
                probe=above_probe(
                    names.REDIS_MEM_FRAGMENTATION_RATIO,
                    frag,
                    fire_level(cfg, "fragmentation_ratio"),
                    healthy=1,
                    extra=used_enough,
                ),
            ),
        ),
    )
