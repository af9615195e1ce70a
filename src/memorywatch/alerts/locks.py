"""Locks: one turn per session and one run per tool call, enforced by 30 s Redis locks."""

from __future__ import annotations

from memorywatch import names
from memorywatch.alerts._build import (
    WINDOW,
    alert,
    any_increase_probe,
    fire_level,
    num,
    ratio_probe,
)
from memorywatch.alerts.model import (
    DASHBOARD_LOCKS_TOOLS,
    AlertsConfig,
    Probe,
    RuleGroup,
    Series,
    constant,
    counter,
    gauge,
    series_selector,
)
from memorywatch.schema import DEFAULT_LOCK_TTL

LOCK = "session"


def group(cfg: AlertsConfig) -> RuleGroup:
    lock = {names.LABEL_LOCK: LOCK}
    contention = cfg.t("lock_contention")
    contention_level = fire_level(cfg, "lock_contention")
    contended = series_selector(names.LOCK_CONTENDED, **lock)
    acquired = series_selector(names.LOCK_ACQUISITIONS, **lock)
    wait = cfg.t("lock_wait_p99")
    w = wait.number()
    bucket = names.LOCK_WAIT + "_bucket"
    bounds = [w / 2, w, w * 2]
    les = [f"{b:g}" for b in bounds] + ["+Inf"]

    def buckets(counts: list[int]) -> dict[str, Series]:
        return {
            series_selector(bucket, **lock, le=le): counter(c)
            for le, c in zip(les, counts, strict=True)
        }

    near = cfg.t("lock_held_ttl_share")
    ttl = DEFAULT_LOCK_TTL
    held_level = fire_level(cfg, "lock_held_ttl_share")
    held = series_selector(names.LOCK_OLDEST_HELD, **lock)
    ttl_series = series_selector(names.LOCK_TTL, **lock)
    return RuleGroup(
        "memorywatch-locks",
        alerts=(
            alert(
                cfg,
                "lock_contention",
                expr=f"increase({names.LOCK_CONTENDED}[{WINDOW}]) / "
                f"increase({names.LOCK_ACQUISITIONS}[{WINDOW}]) > {num(contention.number())}",
                summary="Agents often wait for each other's locks.",
                description="$value of acquisitions of lock $labels.lock had to wait over the "
                f"last 5 minutes (threshold {contention.human_value()}).",
                value_format="percentage",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=ratio_probe(contended, acquired, contention, contention_level, lock),
            ),
            alert(
                cfg,
                "lock_wait_p99",
                expr=f"histogram_quantile(0.99, rate({bucket}[{WINDOW}])) > {num(w)}",
                summary="Agents wait long for locks.",
                description="The 99th percentile wait for lock $labels.lock is $value "
                f"(threshold {wait.human_value()}).",
                value_format="duration",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=Probe(
                    fire=buckets([0, 0, 10, 10]),
                    quiet=buckets([0, 10, 10, 10]),
                    labels=lock,
                    value=constant(w + (w * 2 - w) * 0.99),
                    quiet_value=constant(w / 2 + (w - w / 2) * 0.99),
                ),
            ),
            alert(
                cfg,
                "lock_timeouts",
                expr=f"increase({names.LOCK_TIMEOUTS}[{WINDOW}])"
                f" > {num(cfg.t('lock_timeouts').number())}",
                summary="Agents keep giving up waiting for locks.",
                description="Lock $labels.lock timed out $value times in the last 5 minutes: "
                "those turns or tool calls failed.",
                value_format="count",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=any_increase_probe(cfg, "lock_timeouts", names.LOCK_TIMEOUTS, lock),
            ),
            alert(
                cfg,
                "lock_held_ttl_share",
                expr=f"{names.LOCK_OLDEST_HELD} / {names.LOCK_TTL} > {num(near.number())}",
                summary="A lock is about to expire under its holder.",
                description="The oldest holder of lock $labels.lock has held it for $value of "
                f"its TTL (threshold {near.human_value()}).",
                value_format="percentage",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=Probe(
                    fire={held: gauge(1, round(held_level * ttl, 6)), ttl_series: gauge(ttl, ttl)},
                    quiet={
                        held: gauge(1, round(near.number() * ttl, 6)),
                        ttl_series: gauge(ttl, ttl),
                    },
                    labels=lock,
                    value=constant(round(held_level * ttl, 6) / ttl),
                    quiet_value=constant(round(near.number() * ttl, 6) / ttl),
                ),
            ),
            alert(
                cfg,
                "lock_lost",
                expr=f"increase({names.LOCKS_LOST}[{WINDOW}]) > {num(cfg.t('lock_lost').number())}",
                summary="An agent lost a lock it was holding.",
                description="Lock $labels.lock was lost by its holder $value times in the last "
                "5 minutes: another agent may have run the same turn or tool.",
                value_format="count",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=any_increase_probe(cfg, "lock_lost", names.LOCKS_LOST, lock),
            ),
        ),
    )
