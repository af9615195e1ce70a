"""A busy, slow Redis seen through the exporter's commandstats, and the latency alerts on it.

A real redis-server runs `DEBUG SLEEP 0.3` back to back (every other call inside MULTI/EXEC);
the exporter is scraped before and after. The rate between the two scrapes is what
`rate(...[1m])` reads in Prometheus; it must exceed the RedisBusy threshold, name `debug`, and
count the transactions once. The generated expressions then run in promtool over those real
series (their labels and per-second growth, replayed at a 15 s scrape interval).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import yaml

from harness import binary, redis_server
from memorywatch import names
from memorywatch.alerts.generate import alert_rules, build_groups
from memorywatch.alerts.model import AlertsConfig
from memorywatch.thresholds import Thresholds, format_duration
from metrics import InProcessExporter, Scrape

SLEEP = 0.3
LOAD_SECONDS = 1.5
INSTANCE = "127.0.0.1:9121"
JOB = "memorywatch"
REPLAY_INTERVAL = 15
REPLAY_STEPS = 40
"""10 minutes of 15 s scrapes: past RedisBusy's 1m window + 1m for and RedisSlowCommands's
5m window + 5m for."""


def _by_cmd(scrape: Scrape, metric: str) -> dict[str, float]:
    return {s.labels[names.LABEL_CMD]: float(s.value) for s in scrape.samples(metric)}


def _load(client: redis.Redis) -> tuple[int, int]:
    """DEBUG SLEEP back to back for LOAD_SECONDS: (plain calls, calls inside MULTI/EXEC)."""
    plain = in_exec = 0
    deadline = time.monotonic() + LOAD_SECONDS
    while time.monotonic() < deadline:
        if (plain + in_exec) % 2:
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("DEBUG", "SLEEP", str(SLEEP))
            pipe.execute()
            in_exec += 1
        else:
            client.execute_command("DEBUG", "SLEEP", str(SLEEP))
            plain += 1
    return plain, in_exec


def test_debug_sleep_back_to_back_is_busy_slow_and_named(tmp_path: Path) -> None:
    table = Thresholds()
    with (
        redis_server() as server,
        InProcessExporter(redis_url=server.url, fleet=False) as exporter,
    ):
        client = server.client()
        started = time.monotonic()
        before = exporter.scrape()
        plain, in_exec = _load(client)
        after = exporter.scrape()
        # At least the time between the two INFO calls: every rate below is a lower bound.
        elapsed = time.monotonic() - started

    grew: dict[str, dict[str, float]] = {}
    for metric in (names.REDIS_COMMANDS_DURATION, names.REDIS_COMMANDS):
        old, new = _by_cmd(before, metric), _by_cmd(after, metric)
        grew[metric] = {cmd: value - old.get(cmd, 0.0) for cmd, value in new.items()}
    spent, called = grew[names.REDIS_COMMANDS_DURATION], grew[names.REDIS_COMMANDS]
    seconds = {cmd: v / elapsed for cmd, v in spent.items()}
    calls = {cmd: v / elapsed for cmd, v in called.items()}

    # The command that keeps Redis busy is named by its cmd label.
    assert max(seconds, key=lambda cmd: seconds[cmd]) == "debug", seconds
    busy = sum(v for cmd, v in seconds.items() if cmd != names.CMD_EXEC)
    assert table["redis_busy"].number() < busy <= 1.0, (busy, elapsed, spent)
    # EXEC's time is its DEBUG SLEEP's again: counted as well, the share would pass 1.
    assert (called["debug"], called[names.CMD_EXEC]) == (plain + in_exec, in_exec)
    assert in_exec >= 1 and spent[names.CMD_EXEC] >= SLEEP * in_exec
    mean = spent["debug"] / called["debug"]
    assert SLEEP <= mean < SLEEP * 1.5
    assert mean > table["slow_command_seconds"].number()

    _promtool_fires_on(tmp_path, after, seconds, calls)


def _replay(scrape: Scrape, metric: str, per_second: dict[str, float]) -> list[dict[str, str]]:
    """The scraped series of `metric`, growing at their measured rate every REPLAY_INTERVAL."""
    series = []
    for cmd, value in sorted(_by_cmd(scrape, metric).items()):
        step = per_second.get(cmd, 0.0) * REPLAY_INTERVAL
        selector = f'{metric}{{{names.LABEL_CMD}="{cmd}",instance="{INSTANCE}",job="{JOB}"}}'
        series.append({"series": selector, "values": f"{value!r}+{step!r}x{REPLAY_STEPS}"})
    return series


def _promtool_fires_on(
    tmp_path: Path, scrape: Scrape, seconds: dict[str, float], calls: dict[str, float]
) -> None:
    """The generated expressions and `for` (annotations aside, which depend on the value)
    evaluated by promtool: RedisBusy fires without a cmd label, RedisSlowCommands names the
    0.3 s commands (DEBUG, and EXEC around it) and no fast one."""
    rules = {
        r.alert: r
        for r in alert_rules(build_groups(AlertsConfig()))
        if r.alert in ("RedisBusy", "RedisSlowCommands")
    }
    group = {
        "name": "latency",
        "rules": [
            {
                "alert": r.alert,
                "expr": r.expr,
                "for": format_duration(r.for_seconds),
                "labels": {"severity": r.severity},
            }
            for r in rules.values()
        ],
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    base = {"instance": INSTANCE, "job": JOB}
    busy_at = rules["RedisBusy"].for_seconds + 60
    slow_at = rules["RedisSlowCommands"].for_seconds + 300
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": f"{REPLAY_INTERVAL}s",
        "tests": [
            {
                "interval": f"{REPLAY_INTERVAL}s",
                "input_series": _replay(scrape, names.REDIS_COMMANDS_DURATION, seconds)
                + _replay(scrape, names.REDIS_COMMANDS, calls),
                "alert_rule_test": [
                    {
                        "eval_time": format_duration(busy_at),
                        "alertname": "RedisBusy",
                        "exp_alerts": [{"exp_labels": {**base, "severity": "critical"}}],
                    },
                    {
                        "eval_time": format_duration(slow_at),
                        "alertname": "RedisSlowCommands",
                        "exp_alerts": [
                            {"exp_labels": {**base, names.LABEL_CMD: cmd, "severity": "warning"}}
                            for cmd in ("debug", names.CMD_EXEC)
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [binary("promtool"), "test", "rules", "test.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
