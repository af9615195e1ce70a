"""Durable mode on a real master and replica, and ``from_url`` on Sentinel: what a caller sees
when the replica keeps up, when it stops acknowledging mid-call, and the cost in commands.
Every scenario runs on the sync and on the asyncio client."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from parity import CLIENTS, run_on

from harness import (
    RedisServer,
    SentinelFailover,
    freeze,
    make_certs,
    master_with_replica,
    redis_cluster,
    sentinel_failover,
    thaw,
)
from memorywatch import schema
from memorywatch.agent import AgentState, StateNotDurable, StateUnavailable, ToolContext


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    with master_with_replica() as servers:
        yield servers


def options(**extra: Any) -> dict[str, Any]:
    """A fresh namespace; a replica timeout that a loaded CI machine's replica meets (a
    refusal test freezes the replica, so it waits the whole timeout: it passes 0.3)."""
    return {"namespace": f"d{uuid.uuid4().hex[:8]}", "replica_timeout": 2.0, **extra}


def command_calls(server: RedisServer, command: str) -> int:
    stats = server.client().info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


@pytest.mark.parametrize("client", CLIENTS)
def test_durable_writes_cost_a_wait_each_and_no_extra_round_trip(
    pair: tuple[RedisServer, RedisServer], client: str
) -> None:
    master, replica = pair

    async def calls(c: Any, n: int) -> list[Any]:
        result = await c.run_tool("charge", f"idem-{n}", lambda ctx, o: f"charged {o}", "o-1")
        length = await c.history(f"session-{n}").append("user", "hello")
        async with c.lock("refund", f"order-{n}") as lease:
            return [result, length, lease.fencing_token]

    async def scenario(c: Any) -> list[Any]:
        await calls(c, 0)  # the first call of each script loads it (NOSCRIPT, then again)
        before = {cmd: command_calls(master, cmd) for cmd in ("evalsha", "wait")}
        result, length, token = await calls(c, 1)
        after = {cmd: command_calls(master, cmd) - before[cmd] for cmd in before}
        return [result, length, token, after]

    result, length, token, calls_made = run_on(
        client, master.url, scenario, **options(min_replicas=1)
    )
    assert (result, length) == ("charged o-1", 1)
    assert token > 0
    # claim, completion, append, acquisition and release: 5 scripts; all but the release wait
    assert calls_made == {"evalsha": 5, "wait": 4}
    replicated = replica.client().keys("*session-1*")
    assert replicated, "the appended history is on the replica when append() returns"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_completion_no_replica_acknowledged_carries_the_result_and_is_not_run_twice(
    pair: tuple[RedisServer, RedisServer], client: str
) -> None:
    master, replica = pair
    ran: list[str] = []

    def charge(ctx: ToolContext, order: str) -> str:
        ran.append(order)
        freeze(replica)  # the replica stops acknowledging while the side effect runs
        return f"charged {order}"

    async def scenario(c: Any) -> list[Any]:
        try:
            await c.run_tool("charge", "idem-2", charge, "o-2")
        except StateNotDurable as refused:
            first = [refused.op, refused.acked, refused.wanted, refused.result]
        finally:
            thaw(replica)
        replay = await c.run_tool("charge", "idem-2", charge, "o-2")
        return [first, replay]

    try:
        first, replay = run_on(
            client, master.url, scenario, **options(min_replicas=1, replica_timeout=0.3)
        )
    finally:
        thaw(replica)
    assert first == [schema.DURABLE_TOOL_COMPLETE, 0, 1, "charged o-2"]
    assert replay == "charged o-2"  # the master kept the outcome: the replay answers from it
    assert ran == ["o-2"]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_claim_never_runs_and_the_key_runs_once_when_replicas_are_back(
    pair: tuple[RedisServer, RedisServer], client: str
) -> None:
    master, replica = pair
    ran: list[str] = []

    def charge(ctx: ToolContext, order: str) -> str:
        ran.append(order)
        return f"charged {order}"

    async def scenario(c: Any) -> list[Any]:
        await c.ensure_schema()
        freeze(replica)
        try:
            refused = None
            try:
                await c.run_tool("charge", "idem-3", charge, "o-3")
            except StateNotDurable as exc:
                refused = exc.op
            leftover = master.client().exists(c.schema.tool("idem-3"))
        finally:
            thaw(replica)
        return [refused, leftover, await c.run_tool("charge", "idem-3", charge, "o-3")]

    refused, leftover, result = run_on(
        client, master.url, scenario, **options(min_replicas=1, replica_timeout=0.3)
    )
    assert refused == schema.DURABLE_TOOL_CLAIM
    assert leftover == 0, "the refused claim was not given back"
    assert (result, ran) == ("charged o-3", ["o-3"])


def test_durable_options_are_checked_in_one_line(pair: tuple[RedisServer, RedisServer]) -> None:
    master, _ = pair
    cases = [
        ({"min_replicas": -1}, "min_replicas must be an int >= 0"),
        ({"min_replicas": 1, "replica_timeout": 0}, "replica_timeout must be in (0, 60]"),
        ({"min_replicas": 1, "replica_timeout": 2, "socket_timeout": 1}, "shorter than"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")) as caught:
            AgentState.from_url(master.url, **kwargs)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://127.0.0.1:26379", "name the master group"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379", "name the master group"),
        ("redis+cluster://a:1,b:2", "several hosts are only allowed"),
        ("redis+sentinel://127.0.0.1:99999/agents", "out of range"),
        ("mongodb://127.0.0.1", "unsupported scheme"),
    ],
)
def test_bad_urls_are_one_line_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        AgentState.from_url(url)
    assert "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


# -- Sentinel: passwords apart, TLS ----------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded() -> Iterator[SentinelFailover]:
    with sentinel_failover(password="data-secret", sentinel_password="sentinel-secret") as group:
        yield group


@pytest.mark.parametrize("client", CLIENTS)
def test_sentinel_and_data_node_passwords_are_given_apart(
    guarded: SentinelFailover, client: str
) -> None:
    url = guarded.url.replace("://", "://:data-secret@")

    async def scenario(c: Any) -> list[Any]:
        report = await c.ready()
        length = await c.history("session-1").append("user", "hi")
        stats = c.pool_stats()  # plain on the asyncio client, awaitable through SyncView
        stats = await stats if inspect.isawaitable(stats) else stats
        return [bool(report), length, stats[schema.HEARTBEAT_POOL_MAX]]

    ready, length, pool_max = run_on(
        client, url, scenario, **options(sentinel_password="sentinel-secret", max_connections=7)
    )
    assert (ready, length, pool_max) == (True, 1, 7)  # the instrumented pool, sized as asked

    async def wrong(c: Any) -> list[Any]:
        report = await c.ready()
        try:
            await c.history("session-1").load()
        except StateUnavailable as exc:
            return [bool(report), str(exc)]
        return [bool(report), "loaded"]

    ready, error = run_on(client, url, wrong, **options(sentinel_password="not-it"))
    assert not ready
    assert "unreachable" in error
    assert "sentinel-secret" not in error and "data-secret" not in error


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("client", CLIENTS)
def test_sentinel_over_tls(certs: dict[str, Path], client: str) -> None:
    with sentinel_failover(tls=certs, password="data-secret") as group:
        url = group.url.replace("redis+sentinel://", "rediss+sentinel://:data-secret@")

        async def scenario(c: Any) -> list[Any]:
            report = await c.ready()
            result = await c.run_tool("charge", "idem-1", lambda ctx: ctx.fencing_token)
            return [bool(report), result]

        ready, token = run_on(
            client, url, scenario, ssl_ca_certs=str(certs["ca.crt"]), min_replicas=1
        )
        assert ready and token == 1
        with pytest.raises(StateUnavailable):
            run_on(client, url, lambda c: c.history("s").load())  # no CA given: not trusted


@pytest.mark.parametrize("client", CLIENTS)
def test_cluster_over_tls(certs: dict[str, Path], client: str) -> None:
    with redis_cluster(3, tls=certs) as nodes:
        url = f"rediss+cluster://127.0.0.1:{nodes[0].port}"

        async def scenario(c: Any) -> list[Any]:
            report = await c.ready()
            return [bool(report), await c.history("session-1").append("user", "hi")]

        assert run_on(client, url, scenario, **options(ssl_ca_certs=str(certs["ca.crt"]))) == [
            True,
            1,
        ]
        with pytest.raises(StateUnavailable):
            run_on(client, url, lambda c: c.history("s").load())  # no CA given: not trusted


def test_an_unreachable_cluster_seed_is_one_line_state_unavailable() -> None:
    # The sync Cluster client reads the slot map in from_url; the asyncio one on first use.
    with pytest.raises(StateUnavailable, match="Redis Cluster unreachable") as caught:
        AgentState.from_url("redis+cluster://:hunter2@127.0.0.1:1", socket_timeout=0.5)
    assert "\n" not in str(caught.value) and "hunter2" not in str(caught.value)
