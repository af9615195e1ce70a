"""One Prometheus holding two clusters, as behind Thanos or Mimir: two real Redis servers, two
memorywatch exporters with the same job, a scrape config labelling one target cluster="a" and
the other cluster="b", and the rules and dashboards generated with ``--cluster-label cluster``.

Only cluster a breaks (its Redis stops): RedisDown fires carrying cluster="a", cluster b has no
alert at all, and the dashboards' queries with $cluster = b draw cluster b only.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness import (
    ExporterProcess,
    PrometheusServer,
    RedisServer,
    exporter,
    prometheus,
    wait_until,
)
from memorywatch import names
from memorywatch.agent import AgentState, Settings
from memorywatch.alerts import render
from memorywatch.alerts.generate import GenerateConfig, generate
from memorywatch.alerts.model import AlertsConfig
from memorywatch.dashboards.generate import DashboardsConfig, render_all
from memorywatch.scope import Scope
from memorywatch.thresholds import load

pytestmark = pytest.mark.slow

CLUSTERS = ("a", "b")
LABEL = "cluster"
REDIS_ARGS = ("--maxmemory", "256mb", "--maxmemory-policy", "noeviction")
REDIS_DOWN = "RedisDown"
POLICY_UNSAFE = "RedisEvictionPolicyUnsafe"
"""Fires from a ``count by`` over redis_instance_info: it keeps the cluster only if the
aggregation does."""
BASELINE_SECONDS = 3.0
"""Seconds the healthy pair is watched (three rule evaluations) before cluster a breaks."""
INSTANCE = "redis-exporter:9121"
"""Both targets are relabelled to this instance, as two clusters' deployments of the same
manifests are: only the cluster label tells their series apart."""


@dataclass
class TwoClusters:
    prometheus: PrometheusServer
    redis: dict[str, RedisServer]
    exporters: dict[str, ExporterProcess]
    dashboards: list[dict[str, Any]]

    def alerts(self, cluster: str) -> list[dict[str, str]]:
        """Every alert of `cluster`, pending or firing."""
        return [r["metric"] for r in self.prometheus.query(f'ALERTS{{{LABEL}="{cluster}"}}')]

    def context(self) -> str:
        logs = "\n".join(f"--- exporter {c}\n{e.log[-2000:]}" for c, e in self.exporters.items())
        return f"\n--- prometheus\n{self.prometheus.log[-2000:]}\n{logs}"


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoClusters]:
    scope = Scope(cluster_label=LABEL)
    out = tmp_path_factory.mktemp("alerts")
    cfg = AlertsConfig(thresholds=load(profile="test"), scope=scope)
    generate(GenerateConfig(alerts=cfg, out_dir=out, runbooks_dir=None))
    dashboards = [json.loads(text) for text in render_all(DashboardsConfig(scope=scope)).values()]
    with contextlib.ExitStack() as stack:
        redis = {c: RedisServer(args=REDIS_ARGS).start() for c in CLUSTERS}
        for cluster, server in redis.items():
            stack.callback(server.cleanup)
            # one ready agent instance per cluster, or AgentNoReadyInstances fires in both
            agent = AgentState.from_url(
                server.url, instance_id=f"agent-{cluster}", settings=Settings(heartbeat_ttl=30)
            )
            stack.callback(agent.close)
            agent.start_heartbeat(interval=0.5)
            stack.callback(agent.stop_heartbeat)
        exporters = {
            c: stack.enter_context(
                exporter("--redis-url", redis[c].url, "--enable-keyspace-events")
            )
            for c in CLUSTERS
        }
        targets = {
            f"127.0.0.1:{exporters[c].port}": {LABEL: c, "instance": INSTANCE} for c in CLUSTERS
        }
        prom = stack.enter_context(
            prometheus(list(targets), [out / render.RULES_FILE], target_labels=targets)
        )
        found = TwoClusters(prom, redis, exporters, dashboards)

        def both_scraped() -> bool:
            up = prom.query(f"{names.REDIS_UP} == 1")
            return sorted(r["metric"].get(LABEL, "") for r in up) == list(CLUSTERS)

        try:
            wait_until(both_scraped, 20, interval=0.25, what="redis_up == 1 of both clusters")
        except TimeoutError as exc:
            pytest.fail(f"{exc}{found.context()}")
        yield found


def _break_a(clusters: TwoClusters) -> None:
    """Stop cluster a's Redis (once) and wait until Prometheus has scraped it down."""
    proc = clusters.redis["a"].proc
    if proc is not None and proc.poll() is None:
        clusters.redis["a"].stop()
    try:
        wait_until(
            lambda: bool(clusters.prometheus.query(f'{names.REDIS_UP}{{{LABEL}="a"}} == 0')),
            20,
            interval=0.25,
            what="redis_up of cluster a scraped 0",
        )
    except TimeoutError as exc:
        pytest.fail(f"{exc}{clusters.context()}")


def _wait_firing(clusters: TwoClusters, alertname: str) -> dict[str, str]:
    try:
        wait_until(
            lambda: bool(clusters.prometheus.firing(alertname)),
            30,
            interval=0.25,
            what=f"{alertname} firing",
        )
    except TimeoutError as exc:
        pytest.fail(f"{exc}{clusters.context()}")
    (fired,) = clusters.prometheus.firing(alertname)
    return fired


def test_only_the_broken_cluster_alerts(clusters: TwoClusters) -> None:
    deadline = time.monotonic() + BASELINE_SECONDS
    while time.monotonic() < deadline:  # evaluations of the healthy pair: all quiet
        assert clusters.alerts("a") + clusters.alerts("b") == [], clusters.context()
        time.sleep(0.25)
    clusters.redis["a"].client().config_set("maxmemory-policy", "volatile-lru")
    fired = _wait_firing(clusters, POLICY_UNSAFE)
    assert (fired.get(LABEL), fired["instance"]) == ("a", INSTANCE)
    assert fired["maxmemory_policy"] == "volatile-lru"
    assert clusters.alerts("b") == [], clusters.context()
    _break_a(clusters)
    fired = _wait_firing(clusters, REDIS_DOWN)
    assert (fired.get(LABEL), fired["instance"]) == ("a", INSTANCE)
    assert clusters.alerts("b") == [], clusters.context()


def _substitute(expr: str, cluster: str) -> str:
    values = {"$__rate_interval": "10s", "$__range": "1m", "$cluster": cluster}
    values |= {"$job": ".+", "$instance": ".+"}
    for name, value in values.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_panels_draw_the_picked_cluster_only(clusters: TwoClusters, cluster: str) -> None:
    """Every query runs; every series that carries the cluster label is the picked cluster's;
    and the Redis up panel reads the picked cluster's Redis (a is down, b up)."""
    _break_a(clusters)
    labelled = 0
    for data in clusters.dashboards:
        for panel in data["panels"]:
            for target in panel.get("targets", []):
                result = clusters.prometheus.query(_substitute(target["expr"], cluster))
                for series in result:
                    if LABEL in series["metric"]:
                        assert series["metric"][LABEL] == cluster, (panel["title"], series)
                        labelled += 1
    assert labelled >= 10
    redis_up = [
        p
        for d in clusters.dashboards
        for p in d["panels"]
        if p.get("targets") and p["targets"][0]["expr"].startswith(names.REDIS_UP + "{")
    ]
    assert redis_up
    values = {
        float(s["value"][1])
        for s in clusters.prometheus.query(_substitute(redis_up[0]["targets"][0]["expr"], cluster))
    }
    assert values == ({0.0} if cluster == "a" else {1.0})


def test_without_the_cluster_filter_the_same_queries_mix_both(clusters: TwoClusters) -> None:
    """The filter is what keeps the panels apart: with $cluster matching any cluster, the
    same queries return series of both."""
    seen: set[str] = set()
    for data in clusters.dashboards:
        for panel in data["panels"]:
            for target in panel.get("targets", []):
                result = clusters.prometheus.query(_substitute(target["expr"], ".+"))
                seen |= {s["metric"][LABEL] for s in result if LABEL in s["metric"]}
    assert seen == set(CLUSTERS)
