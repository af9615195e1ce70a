"""Failover without losing live conversations, proven by killing the master.

A real master, its replicas and Redis Sentinel (or a real Cluster): tool calls, history
appends and lock acquisitions run while the test freezes the replicas (SIGSTOP), kills the
master (SIGKILL) and lets Sentinel (or the Cluster) promote a replica. The same scenario runs
on the sync and on the asyncio client (the sync one through ``parity.SyncView``), with durable
mode (``min_replicas=1``) and without it, and prints what each mode kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from parity import CLIENTS, run_on

from harness import (
    ClusterFailover,
    SentinelFailover,
    cluster_failover,
    freeze,
    kill,
    sentinel_failover,
    thaw,
)
from memorywatch import schema
from memorywatch.agent import AgentStateError, StateNotDurable, ToolInProgress, ToolOptions

HEALTHY_STEPS = 30
FROZEN_SECONDS = 1.5
FROZEN_BYTES = 4 * 1024 * 1024
FROZEN_DEADLINE = 10.0
"""While the replicas are frozen, calls go on for FROZEN_SECONDS and, unless they are refused
(durable mode), until FROZEN_BYTES of history were acknowledged (at most FROZEN_DEADLINE): a
loaded machine makes fewer calls in 1.5 s, and what fits in the frozen replica's socket
buffers reaches it when it thaws, so nothing would be lost for the test to see."""
RECOVERY_DEADLINE = 30.0
STEPS_AFTER_RECOVERY = 20
REPLICA_TIMEOUT = 1.5
"""How long a durable write waits for its replica. Generous: the healthy steps must never be
refused, and under two test workers on two cores a replica's first ACK once took more than
0.5 s (a refused claim at healthy step 0). Frozen replicas never answer, so only the frozen
phase's few refused calls wait it out."""
PAD = "x" * 8192
"""Each history entry carries 8 KB, so that what the master acknowledges while its replicas
are frozen outgrows the sockets' buffers and dies with it (without durable mode)."""
SESSIONS = 4


@dataclass
class Topology:
    """What the scenario does to the servers, whichever kind they are."""

    url: str
    freeze_replicas: Callable[[], None]
    kill_master: Callable[[], None]
    promoted: Callable[[], bool]


@dataclass
class Ledger:
    """What the agent was told, per call: the facts the failover must not contradict."""

    acked_tools: dict[str, Any] = field(default_factory=dict)
    acked_entries: list[tuple[str, str]] = field(default_factory=list)
    attempted: list[str] = field(default_factory=list)
    fences: list[int] = field(default_factory=list)
    acked_locks: int = 0
    side_effects: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    acked_frozen: int = 0
    killed_at: float = 0.0
    promoted_at: float | None = None
    first_ok_after_kill: float | None = None
    ready_after_kill: list[bool] = field(default_factory=list)
    lost_entries: int = 0
    lost_tools: int = 0
    ran_twice: int = 0


def charge(ledger: Ledger) -> Callable[..., Any]:
    def run(ctx: Any, key: str) -> dict[str, Any]:
        ledger.side_effects[key] += 1
        return {"charged": key, "fence": ctx.fencing_token}

    return run


async def step(c: Any, i: int, ledger: Ledger) -> bool:
    """One agent call (a tool, a history append or a lock, in turn); True when it succeeded."""
    kind = ("tool", "history", "lock")[i % 3]
    try:
        if kind == "tool":
            key = f"order-{i}"
            ledger.attempted.append(key)
            result = await c.run_tool("charge", key, charge(ledger), key)
            ledger.acked_tools[key] = result
            ledger.fences.append(result["fence"])
        elif kind == "history":
            session, text = f"session-{i % SESSIONS}", f"turn-{i}"
            await c.history(session).append("user", text, pad=PAD)
            ledger.acked_entries.append((session, text))
        else:
            async with c.lock("refund", f"order-{i}", wait=0.1) as lease:
                ledger.fences.append(lease.fencing_token)
            ledger.acked_locks += 1
    except StateNotDurable as refused:
        ledger.refused[refused.op] += 1
        return False
    except AgentStateError as exc:
        ledger.failed[type(exc).__name__] += 1
        return False
    return True


async def chaos(c: Any, topo: Topology) -> Ledger:
    ledger = Ledger()
    i = 0
    for _ in range(HEALTHY_STEPS):
        assert await step(c, i, ledger), (
            f"healthy step {i} failed: {ledger.failed}, refused: {ledger.refused}"
        )
        i += 1

    topo.freeze_replicas()
    frozen_at, frozen_bytes = time.monotonic(), 0
    while time.monotonic() - frozen_at < FROZEN_DEADLINE:
        if time.monotonic() - frozen_at >= FROZEN_SECONDS and (
            ledger.refused or frozen_bytes >= FROZEN_BYTES
        ):
            break
        entries = len(ledger.acked_entries)
        ledger.acked_frozen += await step(c, i, ledger)
        frozen_bytes += (len(ledger.acked_entries) - entries) * len(PAD)
        i += 1

    topo.kill_master()
    ledger.killed_at = time.monotonic()
    recovered = 0
    deadline = ledger.killed_at + RECOVERY_DEADLINE
    while recovered < STEPS_AFTER_RECOVERY and time.monotonic() < deadline:
        if ledger.promoted_at is None and topo.promoted():
            ledger.promoted_at = time.monotonic()
        if ledger.first_ok_after_kill is None and i % 5 == 0:
            ledger.ready_after_kill.append(bool(await c.ready(0.5)))
        if await step(c, i, ledger):
            recovered += 1
            if ledger.first_ok_after_kill is None:
                ledger.first_ok_after_kill = time.monotonic()
        else:
            await asyncio.sleep(0.05)
        i += 1
    ledger.ready_after_kill.append(bool(await c.ready(1.0)))
    await check(c, ledger)
    return ledger


async def check(c: Any, ledger: Ledger) -> None:
    """Read back everything the agent was told succeeded, and replay every tool key."""
    kept: set[tuple[str, str]] = set()
    for n in range(SESSIONS):
        session = f"session-{n}"
        # StateMiss: the whole history is gone, every entry of it counts as lost.
        with contextlib.suppress(AgentStateError):
            kept |= {(session, m["text"]) for m in await c.history(session).load()}
    ledger.lost_entries = sum(entry not in kept for entry in ledger.acked_entries)
    before = Counter(ledger.side_effects)
    for key in ledger.attempted:
        try:
            replayed = await c.run_tool(
                "charge", key, charge(ledger), key, tool_options=ToolOptions(wait=0)
            )
        except ToolInProgress:
            continue  # a claim the failover caught mid-call: it is not run a second time
        if key in ledger.acked_tools and replayed != ledger.acked_tools[key]:
            ledger.lost_tools += 1
    ran_again = ledger.side_effects - before
    ledger.ran_twice = sum(1 for key in ran_again if before[key] >= 1)


def backwards(fences: list[int]) -> int:
    """Fencing tokens handed out that were not above every token before them."""
    highest, count = 0, 0
    for token in fences:
        count += token <= highest
        highest = max(highest, token)
    return count


def report(label: str, ledger: Ledger) -> str:
    acked = len(ledger.acked_entries) + len(ledger.acked_tools) + ledger.acked_locks
    if ledger.first_ok_after_kill and ledger.promoted_at:
        recovery = (
            f"promoted {ledger.promoted_at - ledger.killed_at:.1f}s after the kill, serving "
            f"again {ledger.first_ok_after_kill - ledger.killed_at:.1f}s after it"
        )
    else:
        recovery = "not serving again"
    return (
        f"{label}: {acked} calls acknowledged ({ledger.acked_frozen} while the replicas were "
        f"frozen); lost after the failover: {ledger.lost_entries} of "
        f"{len(ledger.acked_entries)} history entries, {ledger.lost_tools} of "
        f"{len(ledger.acked_tools)} tool records; side effects run twice on replay: "
        f"{ledger.ran_twice}; fencing tokens not above the last: {backwards(ledger.fences)}; "
        f"refused as not durable: {dict(ledger.refused)}; failed otherwise: "
        f"{dict(ledger.failed)}; {recovery}"
    )


def run(client: str, topo: Topology, min_replicas: int, namespace: str) -> Ledger:
    options = {
        "namespace": namespace,
        "min_replicas": min_replicas,
        "replica_timeout": REPLICA_TIMEOUT,
        "socket_timeout": 3.0,  # above REPLICA_TIMEOUT: a WAIT is not a dead socket
        "shards": 1,
    }
    ledger: Ledger = run_on(client, topo.url, lambda c: chaos(c, topo), **options)
    return ledger


def assert_durable(ledger: Ledger) -> None:
    assert ledger.acked_frozen == 0, "a write was acknowledged while no replica could have it"
    assert sum(ledger.refused.values()) > 0, "no call was refused while the replicas were frozen"
    assert ledger.lost_entries == 0
    assert ledger.lost_tools == 0
    assert ledger.ran_twice == 0
    assert max(ledger.side_effects.values()) == 1
    assert backwards(ledger.fences) == 0, "a fencing token went backwards"
    assert ledger.promoted_at is not None and ledger.first_ok_after_kill is not None
    assert ledger.first_ok_after_kill - ledger.promoted_at < 5.0
    assert False in ledger.ready_after_kill, "ready() said true while no master answered"
    assert ledger.ready_after_kill[-1] is True


# -- Sentinel -------------------------------------------------------------------------------------
@pytest.fixture
def group() -> Iterator[SentinelFailover]:
    with sentinel_failover() as found:
        yield found


def sentinel_topology(group: SentinelFailover) -> Topology:
    first = group.master.port

    def kill_master() -> None:
        kill(group.master)
        thaw(group.replica)

    return Topology(
        group.url,
        lambda: freeze(group.replica),
        kill_master,
        lambda: group.master_port() not in (None, first),
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_sentinel_failover_durable_mode_keeps_every_acknowledged_write(
    group: SentinelFailover, client: str
) -> None:
    ledger = run(client, sentinel_topology(group), 1, f"fo{uuid.uuid4().hex[:8]}")
    print("\n" + report(f"Sentinel, {client}, min_replicas=1", ledger))
    assert_durable(ledger)
    assert group.master_port() == group.replica.port


def test_sentinel_failover_without_durable_mode_loses_acknowledged_writes(
    group: SentinelFailover,
) -> None:
    ledger = run("sync", sentinel_topology(group), 0, f"fo{uuid.uuid4().hex[:8]}")
    print("\n" + report("Sentinel, sync, default mode", ledger))
    assert ledger.acked_frozen > 0
    assert sum(ledger.refused.values()) == 0
    assert ledger.lost_entries + ledger.lost_tools > 0
    assert ledger.ran_twice > 0
    assert backwards(ledger.fences) > 0


# -- Cluster --------------------------------------------------------------------------------------
SLOT_KEY = "any:{0}:key"
"""A key of shard 0's hash tag: with ``shards=1`` every key of the state lives in its slot."""


@pytest.fixture
def cluster() -> Iterator[ClusterFailover]:
    assert schema.Schema("any", 1).prefix(0) == "any:{0}:"
    with cluster_failover(SLOT_KEY) as found:
        yield found


def cluster_topology(cluster: ClusterFailover) -> Topology:
    first = cluster.primary.port

    def freeze_replicas() -> None:
        for replica in cluster.replicas:
            freeze(replica)

    def kill_master() -> None:
        kill(cluster.primary)
        for replica in cluster.replicas:
            thaw(replica)

    return Topology(
        cluster.url,
        freeze_replicas,
        kill_master,
        lambda: cluster.serving_port(SLOT_KEY) not in (None, first),
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_cluster_failover_durable_mode_keeps_every_acknowledged_write(
    cluster: ClusterFailover, client: str
) -> None:
    ledger = run(client, cluster_topology(cluster), 1, f"fo{uuid.uuid4().hex[:8]}")
    print("\n" + report(f"Cluster, {client}, min_replicas=1", ledger))
    assert_durable(ledger)
    assert cluster.serving_port(SLOT_KEY) in {r.port for r in cluster.replicas}


def test_cluster_failover_without_durable_mode_loses_acknowledged_writes(
    cluster: ClusterFailover,
) -> None:
    ledger = run("sync", cluster_topology(cluster), 0, f"fo{uuid.uuid4().hex[:8]}")
    print("\n" + report("Cluster, sync, default mode", ledger))
    assert ledger.acked_frozen > 0
    assert ledger.lost_entries + ledger.lost_tools > 0
    assert ledger.ran_twice > 0
