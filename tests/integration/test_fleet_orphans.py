"""Orphaned tool calls: a holder killed mid-call leaves its claim in progress; the exporter
must tell it from a call whose holder still beats, at once (the heartbeat's TTL), by tool, and
without ids. Real redis-server, real SDK processes killed with SIGKILL, the real exporter."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness import RedisServer, redis_server, wait_until
from memorywatch import names
from memorywatch.agent import AgentState, Settings, ToolContext, ToolOptions
from memorywatch.exporter.collectors.fleet.read import CLAIMS_READ, read_fleet
from memorywatch.exporter.fleet_options import FleetOptions
from metrics import InProcessExporter, Scrape

CTX = multiprocessing.get_context("fork")
HEARTBEAT_TTL = 1.0
ORPHAN_FAMILIES = (names.TOOL_CALLS_ORPHANED, names.TOOL_ORPHAN_OLDEST, names.TOOL_ORPHAN_RECLAIM)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def _holder(url: str, instance: str, tool: str, key: str, deadline: float, started: Any) -> None:
    """An instance that beats every 0.2 s and hangs inside a tool call until it is killed."""
    state = AgentState.from_url(
        url, instance_id=instance, settings=Settings(heartbeat_ttl=HEARTBEAT_TTL)
    )
    state.heartbeat()  # present before the claim: a scrape never sees the live holder unborn
    state.start_heartbeat(interval=0.2)

    def hangs(ctx: ToolContext) -> None:
        started.set()
        time.sleep(60)

    state.run_tool(tool, key, hangs, tool_options=ToolOptions(deadline=deadline))


def _spawn(server: RedisServer, instance: str, tool: str, key: str, deadline: float) -> Any:
    started = CTX.Event()
    proc = CTX.Process(target=_holder, args=(server.url, instance, tool, key, deadline, started))
    proc.start()
    assert started.wait(10), f"{instance} never started its tool call"
    return proc


def _kill(proc: Any) -> None:
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(5)


def _when(exporter: InProcessExporter, holds: Callable[[Scrape], bool]) -> Scrape | None:
    """A scrape for which `holds` is true, else None (for `wait_until`)."""
    scrape = exporter.scrape()
    return scrape if holds(scrape) else None


def _orphaned(exporter: InProcessExporter, tool: str, count: float) -> Scrape | None:
    return _when(exporter, lambda s: s.value(names.TOOL_CALLS_ORPHANED, tool=tool) == count)


def test_a_holder_killed_mid_call_is_orphaned_and_a_live_holder_is_not(
    server: RedisServer,
) -> None:
    doomed = _spawn(server, "agent-doomed", "send_email", "idem-SECRET-1", 30)
    live = _spawn(server, "agent-live", "create_ticket", "idem-SECRET-2", 30)
    try:
        with InProcessExporter(redis_url=server.url) as exporter:
            before = exporter.scrape()
            assert before.value(names.TOOLS_IN_PROGRESS) == 2
            # zero-filled for every tool with a call in progress, though no counter of either
            # moved yet (a first call counts nothing until it completes)
            assert before.value(names.TOOL_CALLS_ORPHANED, tool="send_email") == 0
            assert before.value(names.TOOL_CALLS_ORPHANED, tool="create_ticket") == 0
            assert not before.samples(names.TOOL_ORPHAN_OLDEST)
            assert not before.samples(names.TOOL_ORPHAN_RECLAIM)

            _kill(doomed)
            killed = time.monotonic()
            after = wait_until(
                lambda: _orphaned(exporter, "send_email", 1), 5, 0.1, what="an orphan"
            )
            heard = time.monotonic() - killed
    finally:
        _kill(doomed)
        _kill(live)
    # heard as soon as the heartbeat expired, not after the 30 s deadline or the 120 s of
    # AgentToolStuckInProgress
    assert heard < HEARTBEAT_TTL + 2, heard
    assert after.value(names.TOOL_CALLS_ORPHANED, tool="create_ticket") == 0
    assert after.value(names.TOOLS_IN_PROGRESS) == 2
    assert HEARTBEAT_TTL <= after.value(names.TOOL_ORPHAN_OLDEST, tool="send_email") < 10
    # the deadline is 30 s after the claim: that long before a retry may run it again
    assert 20 < after.value(names.TOOL_ORPHAN_RECLAIM, tool="send_email") < 30
    assert [s.labels for s in after.samples(names.TOOL_ORPHAN_OLDEST)] == [{"tool": "send_email"}]
    for family in ORPHAN_FAMILIES:
        assert after.type_of(family) == "gauge"
        assert all(set(s.labels) == {names.LABEL_TOOL} for s in after.samples(family))
    assert "SECRET" not in after.text


def test_past_its_deadline_an_orphan_is_reclaimed_by_a_retry_and_runs_again(
    server: RedisServer,
) -> None:
    doomed = _spawn(server, "agent-doomed", "send_email", "idem-SECRET-3", 2)
    _kill(doomed)
    with InProcessExporter(redis_url=server.url) as exporter:
        wait_until(lambda: _orphaned(exporter, "send_email", 1), 5, 0.1, what="an orphan")
        overdue = wait_until(
            lambda: _when(
                exporter, lambda s: s.value(names.TOOL_ORPHAN_RECLAIM, tool="send_email") <= 0
            ),
            5,
            0.1,
            what="the orphan's deadline",
        )
        assert overdue.value(names.TOOL_CALLS_ORPHANED, tool="send_email") == 1
        retry = AgentState.from_url(server.url, instance_id="agent-retry")
        reran = retry.run_tool(
            "send_email", "idem-SECRET-3", lambda ctx: ctx.reclaimed, tool_options=ToolOptions()
        )
        retry.close()
        assert reran is True  # the side effect ran again: what the alert warned of
        done = exporter.scrape()
    assert done.value(names.TOOL_CALLS_ORPHANED, tool="send_email") == 0
    assert done.value(names.TOOLS_IN_PROGRESS) == 0
    assert done.value(names.TOOL_RECLAIMS, tool="send_email") == 1
    assert not done.samples(names.TOOL_ORPHAN_OLDEST)
    assert not done.samples(names.TOOL_ORPHAN_RECLAIM)


def _crash(ctx: ToolContext) -> None:
    raise KeyboardInterrupt  # completion is skipped on purpose: the claim stays in progress


def test_orphans_are_bounded_per_shard_and_fold_into_other(server: RedisServer) -> None:
    state = AgentState.from_url(server.url, instance_id="agent-never-beats")
    calls = [("refund", n) for n in range(3)] + [("pay", n) for n in range(CLAIMS_READ + 10)]
    for tool, n in calls:  # refund's calls are the oldest: within the oldest CLAIMS_READ
        with pytest.raises(KeyboardInterrupt):
            state.run_tool(tool, f"idem-SECRET-{tool}-{n}", _crash)
    state.close()
    with InProcessExporter(redis_url=server.url, max_label_values=1) as exporter:
        scrape = exporter.scrape()
    assert scrape.value(names.TOOLS_IN_PROGRESS) == len(calls)
    # one shard on a standalone Redis: the oldest CLAIMS_READ claims are read, no more
    orphaned = {s.labels["tool"]: s.value for s in scrape.samples(names.TOOL_CALLS_ORPHANED)}
    assert orphaned == {"pay": CLAIMS_READ - 3, "other": 3}
    assert set(orphaned) == {s.labels["tool"] for s in scrape.samples(names.TOOL_ORPHAN_RECLAIM)}
    assert "SECRET" not in scrape.text


def _hmget_calls(server: RedisServer) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


def test_an_idle_fleet_costs_the_read_no_claim_lookup(server: RedisServer) -> None:
    state = AgentState.from_url(server.url, instance_id="agent-1")
    state.heartbeat()
    state.run_tool("send_email", "idem-SECRET-4", lambda ctx: "sent")
    client = server.client()
    options = FleetOptions()
    # the pool script's own: one HMGET of the shard's pool sums, one of the most used pools'
    # entries; never a heartbeat hash of this SDK
    beats = 2
    before = _hmget_calls(server)
    idle = read_fleet(client, options)
    assert _hmget_calls(server) == before + beats
    assert idle.tools_in_progress == 0 and idle.tool_claims == ()

    with pytest.raises(KeyboardInterrupt):
        state.run_tool("send_email", "idem-SECRET-5", _crash)
    state.heartbeat()  # the holder is alive: in progress, not orphaned
    before = _hmget_calls(server)
    busy = read_fleet(client, options)
    assert _hmget_calls(server) == before + beats + 1
    (claim,) = busy.tool_claims
    assert claim.tool == "send_email" and claim.holder_alive
    assert 0 <= claim.age < 5
    assert 25 < claim.reclaim_in <= 30  # the SDK's default 30 s deadline
    state.close()
