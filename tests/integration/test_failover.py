"""A failover, a restart and a refused durable write, seen by the real exporter and judged by
real Prometheus.

A Sentinel group whose master is SIGKILLed, and masters restarted with and without
persistence: the exporter process is scraped every second by Debian's Prometheus, which
evaluates the committed rule file. RedisMasterChanged and RedisRestartedWithoutPersistence
must fire on exactly the node the change happened to, and not before it; a restart of a
master that reloads its RDB is a master change (a new run_id) but loses nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import (
    LOOPBACK,
    ExporterProcess,
    PrometheusServer,
    exporter,
    prometheus,
    redis_server,
    sentinel_group,
    wait_until,
)
from memorywatch import names, schema
from memorywatch.agent import AgentState
from metrics import Scrape

pytestmark = pytest.mark.slow

RULES_FILE = Path(__file__).resolve().parents[2] / "alerts" / "memorywatch.rules.yaml"
JOB = "memorywatch"
MASTER_CHANGED = "RedisMasterChanged"
RESTARTED = "RedisRestartedWithoutPersistence"
UPTIME = names.REDIS_UPTIME


def _expr(alertname: str) -> str:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    (expr,) = [r["expr"] for g in groups for r in g["rules"] if r.get("alert") == alertname]
    return str(expr)


def _context(prom: PrometheusServer, *exporters: ExporterProcess) -> str:
    logs = "\n".join(f"--- exporter {e.port} ---\n{e.log[-2000:]}" for e in exporters)
    return f"\n--- prometheus ---\n{prom.log[-3000:]}\n{logs}"


@contextlib.contextmanager
def _explained(prom: PrometheusServer, *exporters: ExporterProcess) -> Iterator[None]:
    """A timeout fails the test with the Prometheus and exporter logs."""
    try:
        yield
    except TimeoutError as exc:
        pytest.fail(f"{exc}{_context(prom, *exporters)}")


@pytest.mark.timeout(60)
def test_sentinel_failover_fires_master_changed_on_the_promoted_replica() -> None:
    with (
        sentinel_group("agents", down_after_ms=1000) as (master, replica, sentinel),
        exporter(
            "--redis-url", f"redis+sentinel://{LOOPBACK}:{sentinel.port}/agents", "--no-fleet"
        ) as proc,
        prometheus([f"{LOOPBACK}:{proc.port}"], [RULES_FILE], job=JOB) as prom,
        _explained(prom, proc),
    ):
        old, new = f"{LOOPBACK}:{master.port}", f"{LOOPBACK}:{replica.port}"
        as_replica = f'{names.REDIS_INSTANCE_INFO}{{node="{new}",role="{names.ROLE_SLAVE}"}}'
        wait_until(
            lambda: prom.query(f"count_over_time({as_replica}[1m]) >= 2"),
            20,
            interval=0.2,
            what="two scrapes of the replica in Prometheus",
        )
        assert prom.query(_expr(MASTER_CHANGED)) == []
        assert prom.firing(MASTER_CHANGED) == []

        assert master.proc is not None
        os.kill(master.proc.pid, signal.SIGKILL)
        master.proc.wait(timeout=5)
        wait_until(
            lambda: sentinel.client().sentinel_get_master_addr_by_name("agents")[1] == replica.port,
            20,
            interval=0.1,
            what="sentinel promotes the replica",
        )
        firing = wait_until(
            lambda: prom.firing(MASTER_CHANGED), 20, interval=0.2, what=f"{MASTER_CHANGED}"
        )
        status, text = proc.get("/metrics")
    assert [(a[names.LABEL_NODE], a["severity"], a["job"]) for a in firing] == [
        (new, "warning", JOB)
    ]
    # The exporter's own view after the failover: the replica is the master.
    assert status == 200
    scrape = Scrape(text)
    roles = {
        s.labels[names.LABEL_NODE]: s.labels[names.LABEL_ROLE]
        for s in scrape.samples(names.REDIS_INSTANCE_INFO)
    }
    assert roles == {new: names.ROLE_MASTER}
    # Sentinel lists the dead master as a replica of the new one a moment after the switch.
    old_up = [s.value for s in scrape.samples(names.REDIS_UP) if s.labels[names.LABEL_NODE] == old]
    assert old_up in ([], [0])


@pytest.mark.timeout(60)
def test_a_restart_without_rdb_or_aof_pages_and_one_with_rdb_does_not() -> None:
    with (
        redis_server() as bare,  # the harness's default: save "" and appendonly no
        redis_server("--save", "3600 1") as saved,
        exporter("--redis-url", bare.url, "--no-fleet") as bare_proc,
        exporter("--redis-url", saved.url, "--no-fleet") as saved_proc,
        prometheus(
            [f"{LOOPBACK}:{bare_proc.port}", f"{LOOPBACK}:{saved_proc.port}"],
            [RULES_FILE],
            job=JOB,
        ) as prom,
        _explained(prom, bare_proc, saved_proc),
    ):
        lost, kept = f"{LOOPBACK}:{bare_proc.port}", f"{LOOPBACK}:{saved_proc.port}"
        for server in (bare, saved):
            server.client().rpush("history:s-1", "Book a table for two", "Done")
        # Uptime of at least 2 s in Prometheus, so the restarted process's is visibly lower.
        wait_until(
            lambda: len(prom.query(f"{UPTIME} >= 2")) == 2,
            20,
            interval=0.2,
            what="both masters scraped with an uptime of 2 s",
        )
        configured = {
            r["metric"]["instance"]: float(r["value"][1])
            for r in prom.query(names.RDB_SAVE_CONFIGURED)
        }
        assert configured == {lost: 0, kept: 1}
        assert prom.query(_expr(RESTARTED)) == []

        bare.restart()
        saved.restart()
        assert bare.client().dbsize() == 0  # started empty: the conversation is gone
        assert saved.client().lrange("history:s-1", 0, -1) == ["Book a table for two", "Done"]

        def restarted_scraped() -> bool:
            # Both resets in Prometheus, and the rules evaluated after them.
            resets = prom.query(f"resets({UPTIME}[5m]) > 0")
            return len(resets) == 2 and len(prom.firing(MASTER_CHANGED)) == 2

        wait_until(restarted_scraped, 20, interval=0.2, what="both restarts scraped")
        firing = wait_until(lambda: prom.firing(RESTARTED), 10, interval=0.2, what=RESTARTED)
        matched = prom.query(_expr(RESTARTED))
        changed = prom.firing(MASTER_CHANGED)
    assert [(a["instance"], a["severity"]) for a in firing] == [(lost, "critical")]
    # A master restart is a master change too (a new run_id), persisted or not.
    assert sorted((a["instance"], a["severity"]) for a in changed) == sorted(
        [(lost, "warning"), (kept, "warning")]
    )
    # The alert's value is the restarted master's uptime: seconds, not the day it had before.
    assert [r["metric"]["instance"] for r in matched] == [lost]
    assert 0 <= float(matched[0]["value"][1]) < 30


@pytest.mark.timeout(60)
def test_a_refused_durable_write_pages_agent_state_not_durable() -> None:
    """The counter hash the SDK's durable mode increments on a refusal (schema family
    state_not_durable, field = op), through the exporter's fleet read into the alert."""
    not_durable = "AgentStateNotDurable"
    with (
        redis_server() as server,
        exporter("--redis-url", server.url) as proc,
        prometheus([f"{LOOPBACK}:{proc.port}"], [RULES_FILE], job=JOB) as prom,
        _explained(prom, proc),
    ):
        agent = AgentState.from_url(server.url, instance_id="agent-1")
        try:
            agent.heartbeat()  # writes the schema hash: the exporter reads the fleet from here on
            layout = agent.schema
        finally:
            agent.close()
        op = schema.DURABLE_HISTORY_APPEND
        zero = f'{names.STATE_NOT_DURABLE}{{{names.LABEL_OP}="{op}"}} == 0'
        wait_until(lambda: prom.query(zero), 20, interval=0.2, what="the zero-filled counter")
        assert prom.firing(not_durable) == []
        key = layout.stats(schema.FAMILY_STATE_NOT_DURABLE, "session-1")
        server.client().hincrby(key, op, 1)
        firing = wait_until(lambda: prom.firing(not_durable), 20, interval=0.2, what=not_durable)
    assert [(a[names.LABEL_OP], a["severity"]) for a in firing] == [(op, "critical")]
