"""Every panel query of the committed dashboards, run by a real Prometheus.

A real redis-server master and replica, the real exporter process on each, SDK traffic from
two agent instances (sessions, turns, contended locks, a lock timeout, a tool run and its
replay, a state miss, a held lock, heartbeats, a work queue), and Debian's Prometheus scraping
both exporters every second. Each target expression, with the template variables substituted
the way Grafana does, must run without error through /api/v1/query and return data, unless the
generator documents it as empty while healthy.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dashboards_helpers import TargetInfo, committed, targets

from harness import (
    LOOPBACK,
    ExporterProcess,
    binary,
    exporter,
    free_port,
    master_with_replica,
    stop_pid,
    wait_until,
)
from memorywatch import names
from memorywatch.agent import AgentState, LockTimeout, Settings, StateMiss
from memorywatch.schema import SCHEMA_VERSION

pytestmark = pytest.mark.slow

JOB = "memorywatch"
RATE_INTERVAL = "4s"
"""What Grafana computes for a 1 s scrape interval: 4 x the scrape interval."""
RANGE = "1m"
QUEUE = "jobs"
TARGETS = targets(committed())


@dataclass
class Prometheus:
    proc: subprocess.Popen[bytes]
    port: int
    logfile: Path

    @property
    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        url = f"http://{LOOPBACK}:{self.port}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:  # a bad query is a 400 with a JSON error body
            return json.load(err)

    def query(self, expr: str) -> Any:
        return self.api("/api/v1/query", query=expr)

    def value(self, expr: str) -> float:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0


@contextlib.contextmanager
def prometheus(scrape_targets: list[str]) -> Iterator[Prometheus]:
    workdir = Path(tempfile.mkdtemp(prefix="mw-prometheus-"))
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
        f"      - targets: {json.dumps(scrape_targets)}\n"
    )
    port = free_port()
    logfile = workdir / "prometheus.log"
    with logfile.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--log.level=info",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(proc, port, logfile)
    try:
        yield server
    finally:
        stop_pid(proc)
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", str(workdir)], check=False)


@dataclass
class Stack:
    prometheus: Prometheus
    exporters: list[ExporterProcess]

    @property
    def instances(self) -> list[str]:
        return [f"{LOOPBACK}:{e.port}" for e in self.exporters]

    def context(self) -> str:
        logs = "\n".join(f"--- exporter {e.port} log ---\n{e.log[-3000:]}" for e in self.exporters)
        return f"\n--- prometheus log ---\n{self.prometheus.log[-5000:]}\n{logs}"


def _agents(url: str, stack: contextlib.ExitStack) -> tuple[AgentState, AgentState]:
    """Two agent instances that heartbeat (which also writes the schema the exporter reads)."""
    agents = []
    for name in ("agent-a", "agent-b"):
        state = AgentState.from_url(url, instance_id=name, settings=Settings(heartbeat_ttl=30))
        stack.callback(state.close)
        state.start_heartbeat(interval=0.5)
        stack.callback(state.stop_heartbeat)
        agents.append(state)
    return agents[0], agents[1]


def _traffic(a: AgentState, b: AgentState, stack: contextlib.ExitStack) -> None:
    """What a fleet does, a state miss among it, and one held lock left for the panels."""
    for i in range(4):
        history = a.history(f"session-{i}", user_id=f"user-{i % 2}")
        history.append("user", "Book a table for two")
        with a.turn(f"session-{i}"):
            history.append("assistant", "Done")
    # Contention: b times out once, then waits for a's release.
    lease = a.lock("session-0", ttl=30)
    with pytest.raises(LockTimeout):
        b.lock("session-0", ttl=30, wait=0.1)
    releaser = threading.Timer(0.3, lease.release)
    releaser.start()
    with b.lock("session-0", ttl=30, wait=5):
        pass
    releaser.join()
    # A tool run and its replay (a suppressed duplicate).
    assert a.run_tool("send_email", "idem-1", lambda ctx: "sent") == "sent"
    assert b.run_tool("send_email", "idem-1", lambda ctx: "again") == "sent"
    # A state miss: the history of a live session is gone.
    a.client.delete(a.schema.history("session-3"))
    with pytest.raises(StateMiss):
        a.history("session-3").load()
    # A work queue with a pending entry.
    a.client.xadd(QUEUE, {"turn": "1"})
    a.client.xgroup_create(QUEUE, "workers", id="0")
    a.client.xreadgroup("workers", "w1", {QUEUE: ">"}, count=1)
    # Last, a lock held while Prometheus scrapes (oldest holder, TTL).
    held = b.lock("ticket-7", ttl=60)
    stack.callback(held.release)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with contextlib.ExitStack() as es:
        master, replica = es.enter_context(master_with_replica("--maxmemory", "256mb"))
        primary = es.enter_context(
            exporter(
                "--redis-url",
                master.url,
                "--queue",
                QUEUE,
                "--enable-keyspace-events",
                "--sample-interval",
                "1",
            )
        )
        secondary = es.enter_context(exporter("--redis-url", replica.url, "--no-fleet"))
        a, b = _agents(master.url, es)
        instances = [f"{LOOPBACK}:{primary.port}", f"{LOOPBACK}:{secondary.port}"]
        server = es.enter_context(prometheus(instances))
        result = Stack(server, [primary, secondary])
        up = f'{names.REDIS_UP}{{job="{JOB}"}}'
        try:
            # The fleet's counters at rest are in Prometheus before the traffic moves them.
            wait_until(
                lambda: (
                    server.value(f"min(count_over_time({up}[1m]))") >= 2
                    and server.value(f"count({up})") == 2
                    and server.value(f"count_over_time({names.STATE_MISSES}[1m])") >= 2
                ),
                40,
                interval=0.25,
                what="2 samples of both exporters in Prometheus",
            )
            _traffic(a, b, es)
            # Scraped after the traffic, and enough samples for a rate over RATE_INTERVAL.
            wait_until(
                lambda: (
                    server.value(f"sum({names.LOCKS_HELD})") == 1
                    and server.value(f"min(count_over_time({up}[1m]))") >= 5
                ),
                30,
                interval=0.25,
                what="the traffic scraped, 5 samples per exporter",
            )
        except (TimeoutError, RuntimeError) as exc:
            pytest.fail(f"{exc}{result.context()}")
        yield result


def _regex_value(values: list[str]) -> str:
    """A multi-value variable in a =~ matcher, as Grafana's Prometheus data source writes it."""
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def substitute(expr: str, stack: Stack) -> str:
    values = {
        "$__rate_interval": RATE_INTERVAL,
        "$__range": RANGE,
        "$job": _regex_value([JOB]),
        "$instance": _regex_value(stack.instances),
    }
    for name, value in values.items():  # $__rate_interval before anything shorter
        expr = expr.replace(name, value)
    assert "$" not in expr.replace("$$", ""), f"unsubstituted variable in {expr}"
    return expr


def test_template_variables_list_the_job_and_both_exporters(stack: Stack) -> None:
    for data in committed().values():
        variables = {v["name"]: v["query"] for v in data["templating"]["list"]}
        metric = re.fullmatch(r"label_values\((\w+), job\)", variables["job"])
        assert metric is not None
        jobs = stack.prometheus.api("/api/v1/label/job/values", **{"match[]": metric.group(1)})
        assert jobs["data"] == [JOB]
        inner = re.fullmatch(r"label_values\((.+), instance\)", variables["instance"])
        assert inner is not None
        selector = inner.group(1).replace("$job", JOB)
        instances = stack.prometheus.api("/api/v1/label/instance/values", **{"match[]": selector})
        assert sorted(instances["data"]) == sorted(stack.instances)


@pytest.mark.parametrize(
    "target", TARGETS, ids=[f"{t.uid}#{t.panel_id}{t.ref_id}" for t in TARGETS]
)
def test_panel_query_runs_and_returns_data(stack: Stack, target: TargetInfo) -> None:
    _check_target(stack, target)


def _check_target(stack: Stack, target: TargetInfo) -> None:
    expr = substitute(target.expr, stack)
    response = stack.prometheus.query(expr)
    assert response.get("status") == "success", (
        f"{target.panel_title!r}: {expr}\n{response}{stack.context()}"
    )
    result = response["data"]["result"]
    if target.empty_while_healthy:
        return
    assert result, (
        f"{target.panel_title!r} returned no data: {expr}\n"
        "(if that is right on a healthy fleet, document it with empty_while_healthy)"
        f"{stack.context()}"
    )


def test_the_panel_check_fails_on_a_broken_panel(stack: Stack) -> None:
    """The check above can fail: a real panel with a dropped parenthesis, a misspelt metric
    or a label matching nothing is refused by it."""
    import dataclasses

    (target,) = [t for t in TARGETS if names.REDIS_UP in t.expr and not t.empty_while_healthy][:1]
    broken = [
        target.expr.rstrip(")") if target.expr.endswith(")") else f"sum({target.expr}",
        target.expr.replace(names.REDIS_UP, names.REDIS_UP + "_typo"),
        target.expr.replace(names.REDIS_UP, f'{names.REDIS_UP}{{job="nope"}}', 1),
    ]
    for expr in broken:
        with pytest.raises(AssertionError):
            _check_target(stack, dataclasses.replace(target, expr=expr))


def _panel_value(stack: Stack, uid: str, title: str) -> float:
    dashboard = committed()[uid]
    (panel,) = [p for p in dashboard["panels"] if p["title"] == title]
    (target,) = panel["targets"]
    result = stack.prometheus.query(substitute(target["expr"], stack))["data"]["result"]
    return sum(float(r["value"][1]) for r in result)


def test_stats_show_what_the_fleet_did(stack: Stack) -> None:
    assert _panel_value(stack, "memorywatch-overview", "State misses") >= 1
    assert _panel_value(stack, "memorywatch-overview", "Ready instances") == 2
    assert _panel_value(stack, "memorywatch-overview", "Redis up") == 2
    assert _panel_value(stack, "memorywatch-locks-tools", "Locks held") == 1
    assert _panel_value(stack, "memorywatch-redis", "Connected replicas") == 1


def test_sessions_queue_and_sampler_panels_show_the_traffic(stack: Stack) -> None:
    assert _panel_value(stack, "memorywatch-overview", "Active sessions") >= 4
    # One entry read with XREADGROUP and never acknowledged, before the last scrapes.
    assert _panel_value(stack, "memorywatch-overview", "Unacknowledged queue entries") == 1
    assert _panel_value(stack, "memorywatch-overview", "Oldest unacknowledged queue entry") > 0
    # The sampler runs every second here: its last pass is seconds old, not minutes.
    assert 0 <= _panel_value(stack, "memorywatch-locks-tools", "Keyspace sampler age") < 30
    (panel,) = [
        p
        for p in committed()["memorywatch-locks-tools"]["panels"]
        if p["title"] == "Schema version"
    ]
    (target,) = panel["targets"]
    result = stack.prometheus.query(substitute(target["expr"], stack))["data"]["result"]
    assert [r["metric"][names.LABEL_VERSION] for r in result] == [str(SCHEMA_VERSION)]
