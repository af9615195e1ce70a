"""Agent-fleet metrics: the SDK drives a real Redis from several processes and the exporter's
numbers must equal what the test did."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness import RedisServer, redis_server, wait_until
from memorywatch import names
from memorywatch.agent import (
    AgentState,
    DuplicateExecution,
    LockLost,
    LockTimeout,
    Settings,
    StateMiss,
    ToolContext,
    ToolOptions,
)
from metrics import InProcessExporter, Scrape

CTX = multiprocessing.get_context("fork")


def _state(url: str, instance: str, **settings: Any) -> AgentState:
    return AgentState.from_url(url, instance_id=instance, settings=Settings(**settings))


def _hold_lock(url: str, name: str, hold: float, started: Any) -> None:
    state = _state(url, "holder")
    with state.lock(name, ttl=10, wait=1):
        started.set()
        time.sleep(hold)


def _try_lock(url: str, name: str, wait: float, results: Any) -> None:
    state = _state(url, f"waiter-{os.getpid()}")
    try:
        with state.lock(name, ttl=10, wait=wait):
            results.put("acquired")
    except LockTimeout:
        results.put("timeout")


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def scrape(server: RedisServer, **options: Any) -> Scrape:
    with InProcessExporter(redis_url=server.url, **options) as exporter:
        return exporter.scrape()


def test_contended_acquisitions_and_timeouts_across_processes(server: RedisServer) -> None:
    started, results = CTX.Event(), CTX.Queue()
    holder = CTX.Process(target=_hold_lock, args=(server.url, "order-42", 1.5, started))
    holder.start()
    assert started.wait(10)
    waiters = [
        CTX.Process(target=_try_lock, args=(server.url, "order-42", 0.3, results)) for _ in range(2)
    ]
    waiters.append(CTX.Process(target=_try_lock, args=(server.url, "order-42", 8, results)))
    for proc in [*waiters, holder]:
        proc.start() if proc is not holder else None
    for proc in [*waiters, holder]:
        proc.join(20)
    outcomes = sorted(results.get(timeout=5) for _ in waiters)
    assert outcomes == ["acquired", "timeout", "timeout"]

    result = scrape(server)
    # the one-argument form of the first README: counted by kind, the order id is no label
    assert "order-42" not in result.text
    lock = {names.LABEL_LOCK: "order"}
    assert result.value(names.LOCK_CONTENDED, **lock) == 3
    assert result.value(names.LOCK_TIMEOUTS, **lock) == 2
    assert result.value(names.LOCK_ACQUISITIONS, **lock) == 2
    assert result.value(names.LOCK_WAIT + "_count", **lock) == 2
    # The late waiter waited about as long as the holder still held the lock.
    assert result.value(names.LOCK_WAIT + "_sum", **lock) > 0.5
    assert result.value(names.LOCKS_HELD) == 0
    # Zero-filled before the first loss, so increase() can see the first one.
    assert result.value(names.LOCKS_LOST, **lock) == 0
    assert result.value(names.STATE_MISSES, kind="history") == 0


def _slow_tool(url: str, key: str, outcome: Any) -> None:
    state = _state(url, "slow")

    def charge(ctx: ToolContext) -> str:
        time.sleep(1.5)  # outlives its 0.4 s in-progress deadline, renewal off
        return "charged-by-slow"

    try:
        state.run_tool("charge_card", key, charge, tool_options=ToolOptions(deadline=0.4))
        outcome.put("ok")
    except DuplicateExecution:
        outcome.put("duplicate")


def test_exactly_one_duplicate_execution_after_a_forced_expiry(server: RedisServer) -> None:
    outcome = CTX.Queue()
    slow = CTX.Process(target=_slow_tool, args=(server.url, "idem-order-42", outcome))
    slow.start()
    state = _state(server.url, "fast")
    wait_until(lambda: scrape(server).value(names.TOOLS_IN_PROGRESS) == 1, 10, what="claim")
    time.sleep(0.5)  # past the slow holder's deadline
    result = state.run_tool(
        "charge_card",
        "idem-order-42",
        lambda ctx: "charged-by-fast",
        tool_options=ToolOptions(deadline=5),
    )
    assert result == "charged-by-fast"
    slow.join(20)
    assert outcome.get(timeout=5) == "duplicate"
    # A replay is answered from the record: a suppressed duplicate, not a third charge.
    assert state.run_tool("charge_card", "idem-order-42", lambda ctx: "never") == "charged-by-fast"

    metrics = scrape(server)
    tool = {names.LABEL_TOOL: "charge_card"}
    assert metrics.value(names.TOOL_DUPLICATE_EXECUTIONS, **tool) == 1
    assert metrics.value(names.TOOL_RECLAIMS, **tool) == 1
    assert metrics.value(names.TOOL_DUPLICATES_SUPPRESSED, **tool) == 1
    assert metrics.value(names.TOOL_EXECUTIONS, status="completed", **tool) == 1
    assert metrics.value(names.TOOLS_IN_PROGRESS) == 0
    assert "idem-order-42" not in metrics.text


def _heartbeat_forever(url: str, instance: str) -> None:
    state = _state(url, instance, heartbeat_ttl=1.0)
    state.start_heartbeat(interval=0.2)
    time.sleep(60)


def test_a_killed_instance_leaves_the_count_when_its_heartbeat_expires(
    server: RedisServer,
) -> None:
    """Dead is not "not ready": an instance whose heartbeat expired is gone (the index keeps
    it for the window, the count does not), so a crash pages no AgentInstancesNotReady."""
    agents = [
        CTX.Process(target=_heartbeat_forever, args=(server.url, f"agent-{i}")) for i in range(2)
    ]
    for agent in agents:
        agent.start()
    try:

        def count(state: str) -> float:
            return scrape(server).value(names.AGENT_INSTANCES, state=state)

        wait_until(lambda: count("ready") == 2, 10, what="two ready instances")
        pool = scrape(server)
        assert pool.value(names.AGENT_POOL_USE_INSTANCES, le="+Inf") == 2
        assert pool.value(names.AGENT_POOL_TOP_USE, instance_id="agent-0") >= 0
        os.kill(agents[0].pid or 0, signal.SIGKILL)
        wait_until(
            lambda: count("ready") == 1 and count("not_ready") == 0, 10, what="one instance left"
        )
        assert scrape(server).value(names.AGENT_INSTANCES, state="ready") == 1
    finally:
        for agent in agents:
            if agent.is_alive():
                os.kill(agent.pid or 0, signal.SIGKILL)
            agent.join(5)


def test_sessions_turns_misses_and_no_ids_in_labels(server: RedisServer) -> None:
    state = _state(server.url, "agent-1")
    for i in range(5):
        history = state.history(f"session-SECRET-{i}", user_id="user-SECRET-7")
        history.append("user", "Book a table for two")
        with state.turn(f"session-SECRET-{i}"):
            pass
    server.client().delete(state.schema.history("session-SECRET-0"))
    with pytest.raises(StateMiss):
        state.history("session-SECRET-0").load()
    state.preferences("user-SECRET-7").set("language", "en")

    metrics = scrape(server)
    assert metrics.value(names.SESSIONS_ACTIVE) == 5
    assert metrics.value(names.TURN_DURATION + "_count") == 5
    assert metrics.value(names.STATE_MISSES, kind="history") == 1
    assert metrics.value(names.SCHEMA_INFO, version="2") == 1
    assert "SECRET" not in metrics.text


def test_locks_held_and_the_longest_held(server: RedisServer) -> None:
    state = _state(server.url, "agent-1")
    leases = [state.lock("ticket", str(i), ttl=30) for i in range(3)]
    time.sleep(0.3)
    leases.append(state.lock("refund", "order-9", ttl=10))
    metrics = scrape(server)
    assert metrics.value(names.LOCKS_HELD) == 4
    # one series per kind, the oldest lease of the kind: resources never become labels
    assert metrics.value(names.LOCK_OLDEST_HELD, lock="ticket") >= 0.3
    assert 29 < metrics.value(names.LOCK_TTL, lock="ticket") <= 30.5
    assert metrics.value(names.LOCK_OLDEST_HELD, lock="refund") < 0.3
    assert 9 < metrics.value(names.LOCK_TTL, lock="refund") <= 10.5
    assert {s.labels["lock"] for s in metrics.samples(names.LOCK_TTL)} == {"ticket", "refund"}
    for lease in leases:
        lease.release()
    assert scrape(server).value(names.LOCKS_HELD) == 0


def test_label_values_past_the_limit_fold_into_other(server: RedisServer) -> None:
    state = _state(server.url, "agent-1")
    for i in range(5):
        for _ in range(5 - i):
            with state.lock(f"lock-{'abcde'[i]}", ttl=5):
                pass
    metrics = scrape(server, max_label_values=2)
    acquired = {s.labels["lock"]: s.value for s in metrics.samples(names.LOCK_ACQUISITIONS)}
    assert acquired == {"lock-a": 5, "lock-b": 4, "other": 3 + 2 + 1}


def test_folded_counters_never_go_down_when_names_change_rank(server: RedisServer) -> None:
    state = _state(server.url, "agent-1")
    for _ in range(2):
        with state.lock("lock-a", ttl=5):
            pass
    with pytest.raises(LockLost), state.lock("lock-b", ttl=0.2):
        time.sleep(0.4)
    with InProcessExporter(redis_url=server.url, max_label_values=1) as exporter:
        first = exporter.scrape()
        for _ in range(5):  # lock-b is now the most active name
            with state.lock("lock-b", ttl=5):
                pass
        second = exporter.scrape()
    for scrape in (first, second):
        assert scrape.value(names.LOCKS_LOST, lock="other") == 1
        assert scrape.value(names.LOCKS_LOST, lock="lock-a") == 0
    assert second.value(names.LOCK_ACQUISITIONS, lock="other") == 6  # 1 lost + 5


def test_queue_depth_and_pending(server: RedisServer) -> None:
    client = server.client()
    for i in range(5):
        client.xadd("jobs", {"n": i})
    client.xgroup_create("jobs", "workers", id="0")
    client.xreadgroup("workers", "w1", {"jobs": ">"}, count=2)
    client.lpush("tasks", "a", "b", "c")
    time.sleep(0.05)
    metrics = scrape(server, queues=("jobs", "tasks", "absent"))
    assert metrics.value(names.QUEUE_LENGTH, queue="jobs") == 5
    assert metrics.value(names.QUEUE_PENDING, queue="jobs") == 2
    assert metrics.value(names.QUEUE_OLDEST_PENDING, queue="jobs") >= 0.05
    assert metrics.value(names.QUEUE_LENGTH, queue="tasks") == 3
    assert not [s for s in metrics.samples(names.QUEUE_LENGTH) if s.labels["queue"] == "absent"]


def test_corrupt_and_foreign_keys_are_schema_errors_not_crashes(server: RedisServer) -> None:
    state = _state(server.url, "agent-1")
    state.history("s1").append("user", "hi")
    client = server.client()
    client.set("mw:garbage", "x")  # foreign: not a shape of the schema
    client.set(state.schema.history("s2"), "not a list")  # wrong type
    client.set(state.schema.lock("l1"), "no-fence-here", ex=60)  # unparsable lock
    client.hset(state.schema.preferences("u1"), "k", "v")  # must expire, has no TTL
    client.hset(state.schema.stats_keys("lock_contended")[0], "l2", "not-a-number")
    # A held lock and a claim in progress: their indexes are the schema's own keys.
    lease = state.lock("order-1", ttl=30)
    release = threading.Event()
    claim = threading.Thread(
        target=state.run_tool, args=("charge_card", "idem-1", lambda ctx: release.wait(10))
    )
    claim.start()
    wait_until(lambda: client.zcard(state.schema.tools_in_progress("idem-1")) == 1, 10)

    with InProcessExporter(redis_url=server.url, sample_interval=0.1) as exporter:
        assert exporter.app.fleet is not None and exporter.app.fleet.sampler is not None
        assert exporter.app.fleet.sampler.wait_for_pass(0.0, 10) is not None
        metrics = exporter.scrape()
    assert metrics.value(names.REDIS_UP) == 1
    assert metrics.value(names.SCHEMA_ERRORS, kind="foreign") == 1
    assert metrics.value(names.SCHEMA_ERRORS, kind="wrong_type") == 1
    assert metrics.value(names.SCHEMA_ERRORS, kind="missing_ttl") == 1
    # the unparsable lock record and the unparsable counter hash
    assert metrics.value(names.SCHEMA_ERRORS, kind="unparsable") == 2
    assert metrics.value(names.KEYS_WITHOUT_TTL, key_class="preferences") == 1
    assert metrics.value(names.KEYS_WITHOUT_TTL, key_class="history") == 0
    assert metrics.value(names.SAMPLER_AGE) < 10
    release.set()
    claim.join(10)
    lease.release()


def test_evicted_key_classes_under_volatile_lru() -> None:
    with redis_server("--maxmemory", "2mb", "--maxmemory-policy", "volatile-lru") as server:
        with InProcessExporter(redis_url=server.url, enable_keyspace_events=True) as exporter:
            assert exporter.app.fleet is not None and exporter.app.fleet.tracker is not None
            assert exporter.app.fleet.tracker.wait_live(10)
            state = _state(server.url, "agent-1")
            with state.lock("order-1", ttl=30):
                pass
            for i in range(400):
                try:
                    state.history(f"s{i}").append("user", "x" * 2000)
                except Exception:  # out of memory once nothing volatile is left: fine here
                    break
            assert server.client().info("stats")["evicted_keys"] > 0

            def counted() -> dict[str, float]:
                samples = exporter.scrape().samples(names.EVICTED_KEYS)
                return {s.labels["key_class"]: s.value for s in samples}

            def all_counted() -> bool:
                # Redis keeps evicting in the background while over maxmemory: compare live.
                return sum(counted().values()) == server.client().info("stats")["evicted_keys"]

            wait_until(all_counted, 10, what="every eviction counted")
            by_class = counted()
        # Only history keys carry a TTL here (the lock was released), so volatile-lru could
        # evict nothing else: every eviction must be classified as history.
        assert by_class["history"] == sum(by_class.values()) > 0
        assert not exporter.app.fleet.tracker.live  # stopped with the exporter


def test_eviction_tracking_off_is_said_not_silent(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memorywatch.exporter")

    def warned() -> bool:
        return any("eviction classes are not tracked" in r.getMessage() for r in caplog.records)

    with InProcessExporter(redis_url=server.url) as exporter:
        wait_until(warned, 10, what="the tracker's warning")
        metrics = exporter.scrape()
    assert metrics.value(names.EVICTION_TRACKING) == 0
    assert server.client().config_get("notify-keyspace-events")["notify-keyspace-events"] == ""


def test_fleet_read_survives_a_redis_without_agents(server: RedisServer) -> None:
    metrics = scrape(server)
    assert metrics.value(names.SCHEMA_INFO, version="absent") == 1
    assert metrics.value(names.AGENT_INSTANCES, state="ready") == 0
    assert metrics.value(names.LOCKS_HELD) == 0


def test_sampler_budget_bounds_scan_work_on_a_shared_redis(server: RedisServer) -> None:
    from memorywatch.exporter.sampler import KeyspaceSampler

    client = server.client()
    client.execute_command("DEBUG", "POPULATE", "20000", "unrelated")  # not our namespace
    state = _state(server.url, "agent-1")
    state.history("s1").append("user", "hi")
    sampler = KeyspaceSampler(lambda: server.client(), "mw", budget=1000, batch=500)
    before = client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
    sampler.cycle(client)
    scans = client.info("commandstats")["cmdstat_scan"]["calls"] - before
    assert scans <= 2  # 1,000 keys walked at most, in steps of 500
    assert sampler.result() is None  # the pass is not over: the rest waits for later cycles


def test_version_1_data_is_said_in_one_log_line_and_not_read(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = server.client()
    client.hset("mw:schema", mapping={"version": "1", "shards": "1"})
    client.hset("mw:{0}:stats:lock_contended", "order-42", 3)  # a v1 counter, uncapped name
    caplog.set_level(logging.WARNING, logger="memorywatch.exporter")
    with InProcessExporter(redis_url=server.url) as exporter:
        first, second = exporter.scrape(), exporter.scrape()
    said = [r.getMessage() for r in caplog.records if "schema version 1" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0]  # once, not once per scrape
    assert "memorywatch >= 0.2" in said[0]
    for metrics in (first, second):
        assert metrics.value(names.SCHEMA_INFO, version="1") == 1
        assert metrics.samples(names.LOCK_CONTENDED) == []  # v1 data is not read as v2
        assert "order-42" not in metrics.text
