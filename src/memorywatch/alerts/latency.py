"""Latency: is Redis's one thread free to serve the agents, or busy with slow commands.

Both alerts read INFO commandstats (`redis_commands_duration_seconds_total` and
`redis_commands_total`, per ``cmd``: bounded by Redis's command table, never by user data).
Redis counts a command's execution time only, not the time a blocking command (BLPOP,
XREADGROUP BLOCK, WAIT) spends waiting, so idle blocking reads do not make Redis look busy.
"""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts._build import WINDOW, alert, fire_level, num, ratio_probe
from memorywatch.alerts.model import (
    DASHBOARD_REDIS,
    AlertRule,
    AlertsConfig,
    Probe,
    RuleGroup,
    Series,
    counter,
    series_selector,
)

BUSY_WINDOW = "1m"
BUSY_WINDOW_SECONDS = 60
"""Short: a Redis busy all the time is an outage in the making, seen within two minutes."""
PROBE_BUSY_CMD = "debug"
"""DEBUG SLEEP back to back: what the integration test runs against a real Redis."""
PROBE_SLOW_CMD = "keys"


def _busy(cfg: AlertsConfig) -> AlertRule:
    t = cfg.t("redis_busy")
    level = fire_level(cfg, "redis_busy")
    interval = cfg.test_interval
    window_steps = BUSY_WINDOW_SECONDS // interval
    duration = names.REDIS_COMMANDS_DURATION
    busy = series_selector(duration, **{names.LABEL_CMD: PROBE_BUSY_CMD})
    exec_ = series_selector(duration, **{names.LABEL_CMD: names.CMD_EXEC})
    # A rate over a fixed window ramps up over it, whatever the test interval: the fire series
    # starts with a window's worth of busy seconds at ONSET (true from ONSET on), then grows at
    # `level` seconds per second. Its rate is exact: the counter starts at 0, so Prometheus
    # does not extrapolate before the first sample.
    jump, per_step = level * BUSY_WINDOW_SECONDS, level * interval
    quiet_step = t.number() * interval

    def value(steps: int, _interval: int) -> float:
        grown = window_steps * per_step if steps >= window_steps else jump + steps * per_step
        return grown / BUSY_WINDOW_SECONDS

    def quiet_value(steps: int, _interval: int) -> float:
        return min(steps + 1, window_steps) * quiet_step / BUSY_WINDOW_SECONDS

    return alert(
        cfg,
        "redis_busy",
        expr=f"{queries.redis_busy(BUSY_WINDOW)} > {num(t.number())}",
        summary="Redis is busy running commands: every agent command waits in line.",
        description="Redis $labels.instance spent $value of the last minute running commands "
        f"(threshold {t.human_value()}): its one thread serves every agent, so their commands "
        "queue behind each other.",
        value_format="percentage",
        dashboard=DASHBOARD_REDIS,
        # EXEC runs as busy as the threshold in both: left out of the sum, it never counts.
        probe=Probe(
            fire={busy: Series(0, jump, per_step), exec_: counter(quiet_step)},
            quiet={busy: counter(quiet_step), exec_: counter(quiet_step)},
            labels={},
            value=value,
            quiet_value=quiet_value,
        ),
    )


def _slow(cfg: AlertsConfig) -> AlertRule:
    t = cfg.t("slow_command_seconds")
    cmd = {names.LABEL_CMD: PROBE_SLOW_CMD}
    return alert(
        cfg,
        "slow_command_seconds",
        expr=f"{queries.command_mean_seconds(WINDOW)} > {num(t.number())}",
        summary="A Redis command is slow: every client waits while it runs.",
        description="$labels.cmd calls on Redis $labels.instance took $value on average over "
        f"the last 5 minutes (threshold {t.human_value()}); Redis serves no other client "
        "while one runs.",
        value_format="duration",
        dashboard=DASHBOARD_REDIS,
        probe=ratio_probe(
            series_selector(names.REDIS_COMMANDS_DURATION, **cmd),
            series_selector(names.REDIS_COMMANDS, **cmd),
            t,
            fire_level(cfg, "slow_command_seconds"),
            cmd,
        ),
    )


def group(cfg: AlertsConfig) -> RuleGroup:
    return RuleGroup("memorywatch-latency", alerts=(_busy(cfg), _slow(cfg)))
