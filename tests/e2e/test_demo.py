"""`memorywatch demo` against a Redis the user supplied: credentials stay out of the output and
of every command line, settings an incident changes are put back, the agents' page-refresh
replays are suppressed duplicates. Real redis-server, exporter and worker processes; no
Prometheus."""

from __future__ import annotations

import math
import random
import time
import urllib.request
from pathlib import Path
from typing import cast

import pytest

from harness import LOOPBACK, master_with_replica, redis_server, wait_until
from memorywatch import schema
from memorywatch.demo import worker
from memorywatch.demo.processes import DemoError
from memorywatch.demo.run import Demo, DemoConfig

PASSWORD = "s3cret-demo-pw"  # the password of a throwaway redis-server


def _metrics(demo: Demo) -> str:
    url = demo.urls()["metrics"]
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 -- loopback
        return str(resp.read().decode())


def _sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.slow
def test_password_is_neither_printed_nor_on_a_command_line(tmp_path: Path) -> None:
    with redis_server(password=PASSWORD) as server:
        said: list[str] = []
        url = f"redis://:{PASSWORD}@{LOOPBACK}:{server.port}"
        demo = Demo(
            DemoConfig(redis_url=url, workers=1, prometheus=False, workdir=tmp_path),
            say=said.append,
        )
        try:
            demo.start()
            demo.announce()
            # The exporter authenticated (password from its environment) ...
            wait_until(
                lambda: _sample(_metrics(demo), "redis_up ") == 1,
                15,
                interval=0.2,
                what="redis_up 1",
            )
            # ... and so did the agent: it registered itself as ready.
            wait_until(
                lambda: (
                    (_sample(_metrics(demo), 'memorywatch_agent_instances{state="ready"}') or 0)
                    >= 1
                ),
                15,
                interval=0.2,
                what="the agent is ready",
            )
            argvs = [cast("list[str]", child.proc.args) for child in demo.children.started]
            assert {c.name for c in demo.children.started} == {"exporter", "agent-1"}
            assert all(child.alive() for child in demo.children.started)
        finally:
            demo.stop()
    assert any(str(server.port) in line for line in said), said  # the URL was printed ...
    leaked = [line for line in said if PASSWORD in line]
    assert leaked == []  # ... without its password
    assert [argv for argv in argvs if any(PASSWORD in arg for arg in argv)] == []


@pytest.mark.slow
def test_eviction_puts_back_maxmemory_and_policy_of_a_reused_redis(tmp_path: Path) -> None:
    with redis_server() as server:
        client = server.client()
        client.config_set("maxmemory-policy", "allkeys-lfu")
        client.config_set("maxmemory", str(512 * 1024 * 1024))
        said: list[str] = []
        demo = Demo(
            DemoConfig(redis_url=server.url, workers=0, prometheus=False, workdir=tmp_path),
            say=said.append,
        )
        try:
            demo.start()
            demo.inject("eviction")
            assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
            assert client.config_get("maxmemory")["maxmemory"] != str(512 * 1024 * 1024)
            time.sleep(0.5)  # the flood agent writes
        finally:
            demo.stop()
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lfu"
        assert client.config_get("maxmemory")["maxmemory"] == str(512 * 1024 * 1024)
        assert any(line.startswith("restored maxmemory") for line in said), said


def test_broken_link_refuses_a_reused_replica(tmp_path: Path) -> None:
    with master_with_replica() as (master, replica):
        demo = Demo(
            DemoConfig(redis_url=master.url, replica_url=replica.url, workdir=tmp_path),
            say=lambda line: None,
        )
        with pytest.raises(DemoError, match="replica the demo started itself"):
            demo.inject("broken-link")
        assert replica.client().info("replication")["master_port"] == master.port


@pytest.mark.slow
def test_page_refresh_replays_are_suppressed_duplicates() -> None:
    with redis_server() as server:
        state = worker.connect(server.url, "agent-replays")
        try:
            worker.normal(state, random.Random(7), time.monotonic() + 2.0)
            client = server.client()

            def total(family: str) -> float:
                keys = state.schema.stats_keys(family)
                replies = (cast("dict[str, str]", client.hgetall(k)) for k in keys)
                return math.fsum(schema.merge_counters(replies).values())

            executions = total(schema.FAMILY_TOOL_EXECUTIONS)
            suppressed = total(schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED)
            mismatches = total(schema.FAMILY_TOOL_FINGERPRINT_MISMATCHES)
        finally:
            state.close()
    assert executions > 0
    assert suppressed > 0
    assert mismatches == 0
